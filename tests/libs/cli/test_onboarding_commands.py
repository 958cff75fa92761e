"""`whatlead instances connect | logout | delete` against a fake ReputationService: what they ask, the QR
code they draw from the raw code, how they follow WatchInstance, and how they end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TypeAlias

import grpc
import pytest
import segno

from libs.cli import qr
from tests.libs.cli.conftest import API_KEY, interrupted
from tests.libs.cli.fake_services import Script
from whatlead.common.v1 import common_pb2
from whatlead.reputation.v1 import reputation_pb2

ROOT = Path(__file__).resolve().parents[3]
INSTANCE_ID = "0193a1b2-0000-7000-8000-000000000001"
INSTANCE = reputation_pb2.Instance(
    id=INSTANCE_ID,
    provider=common_pb2.PROVIDER_SIMULATOR,
    provider_instance_ref="sales-1",
    phone="5511987654321",
    connection_state=common_pb2.CONNECTION_STATE_QR_REQUIRED,
)
FIRST_CODE = "2@first-code,bm9pc2U=,aWRlbnRpdHk=,c2VjcmV0"
SECOND_CODE = "2@second-code,bm9pc2U=,aWRlbnRpdHk=,c2VjcmV0"
QR = common_pb2.CONNECTION_STATE_QR_REQUIRED
CONNECTED = common_pb2.CONNECTION_STATE_CONNECTED
State: TypeAlias = common_pb2.ConnectionState.ValueType


@pytest.fixture(autouse=True)
def api_key(registry, monkeypatch):
    monkeypatch.setenv("WHATLEAD_API_KEY", API_KEY)


def connection(state: State, code: str = "", **fields) -> reputation_pb2.InstanceConnection:
    return reputation_pb2.InstanceConnection(
        instance_id=INSTANCE_ID, state=state, qr=reputation_pb2.QrCode(code=code) if code else None, **fields
    )


def update(state: State, code: str = "", **fields) -> reputation_pb2.WatchInstanceResponse:
    return reputation_pb2.WatchInstanceResponse(connection=connection(state, code, **fields))


def answers_connect(registry, state: State = QR, code: str = FIRST_CODE, **fields) -> None:
    registry.answer(
        "ConnectInstance",
        reputation_pb2.ConnectInstanceResponse(
            instance=INSTANCE, connection=connection(state, code, **fields)
        ),
    )


def drawn(out: str, code: str) -> int:
    """How many times `out` holds the whole terminal drawing of `code`, line after line."""
    return out.count("\n".join(qr.draw(code, colour=False)) + "\n")


async def test_connect_draws_the_qr_follows_each_new_code_and_ends_when_the_phone_has_linked_it(
    registry, whatlead
):
    answers_connect(registry, pairing_code="ABCD-EFGH")
    registry.stream(
        "WatchInstance",
        Script(
            [
                update(QR, FIRST_CODE, pairing_code="ABCD-EFGH"),  # the current state first: shown once
                update(QR, SECOND_CODE, pairing_code="ABCD-EFGH"),  # the provider rotated the code
                update(common_pb2.CONNECTION_STATE_CONNECTING),
                update(CONNECTED),
            ],
            stay_open=True,  # the CLI leaves on CONNECTED, whatever the server does next
        ),
    )

    code, out, err = await whatlead(
        "instances", "connect", INSTANCE_ID, "--pairing-phone", "+55 11 98765-4321"
    )

    assert code == 0, err
    connect, watch = registry.calls
    assert connect.method == "ConnectInstance" and watch.method == "WatchInstance"
    assert (connect.request.instance_id, connect.request.pairing_phone) == (INSTANCE_ID, "5511987654321")
    assert watch.request.instance_id == INSTANCE_ID
    assert watch.metadata["authorization"] == f"Bearer {API_KEY}"  # the key goes on the stream too
    assert drawn(out, FIRST_CODE) == 1 and drawn(out, SECOND_CODE) == 1
    assert out.index("A new QR code") > out.index("Scan with WhatsApp on the phone of +5511987654321")
    assert out.count("ABCD-EFGH") == 1
    states = [line.split()[-1] for line in out.splitlines() if line.startswith("- ")]
    assert states == ["QR_REQUIRED", "CONNECTING", "CONNECTED"]
    assert out.rstrip().endswith(f"connected: instance {INSTANCE_ID} is linked to +5511987654321")
    await asyncio.wait_for(registry.left.wait(), 5)  # and it closed the stream


async def test_a_number_already_connected_needs_no_stream(registry, whatlead):
    answers_connect(registry, state=CONNECTED, code="")

    code, out, _ = await whatlead("instances", "connect", INSTANCE_ID)

    assert code == 0 and "connected:" in out
    assert [call.method for call in registry.calls] == ["ConnectInstance"]


async def test_a_ban_ends_connect_with_a_clear_error(registry, whatlead):
    answers_connect(registry)
    registry.stream(
        "WatchInstance",
        Script([update(QR, FIRST_CODE), update(common_pb2.CONNECTION_STATE_BANNED, reason="401")]),
    )

    code, out, err = await whatlead("instances", "connect", INSTANCE_ID)

    assert code == 1
    assert "BANNED  (401)" in out
    assert err == f"error: WhatsApp banned +5511987654321 (instance {INSTANCE_ID}); it will not connect\n"


@pytest.mark.parametrize(
    ("script", "status", "expected"),
    [
        (
            Script([], end=(grpc.StatusCode.UNAVAILABLE, "reputation is restarting")),
            64 + 14,
            "error: UNAVAILABLE: reputation is restarting (reputation at ",
        ),
        (
            Script([update(QR, FIRST_CODE)]),
            1,
            "error: the server ended the instance's stream before it connected; run connect again\n",
        ),
    ],
)
async def test_a_stream_that_fails_or_ends_before_connected_is_a_clear_error(
    registry, whatlead, script, status, expected
):
    answers_connect(registry)
    registry.stream("WatchInstance", script)

    code, out, err = await whatlead("instances", "connect", INSTANCE_ID)

    assert code == status and err.startswith(expected) and err.count("\n") == 1
    assert drawn(out, FIRST_CODE) == 1


async def test_a_watcher_cut_off_for_falling_behind_watches_again_and_redraws_nothing_it_drew(
    registry, whatlead
):
    answers_connect(registry)
    registry.stream(
        "WatchInstance",
        Script(
            [update(QR, FIRST_CODE)], end=(grpc.StatusCode.RESOURCE_EXHAUSTED, "fell behind; watch again")
        ),
        Script([update(QR, FIRST_CODE), update(CONNECTED)]),  # again from the current state
    )

    code, out, err = await whatlead("instances", "connect", INSTANCE_ID)

    assert code == 0, err
    assert len(registry.requests("WatchInstance")) == 2
    assert drawn(out, FIRST_CODE) == 1 and out.count("QR_REQUIRED") == 1


async def test_ctrl_c_leaves_connect_cleanly_and_closes_the_stream(registry):
    answers_connect(registry)
    registry.stream("WatchInstance", Script([update(QR, FIRST_CODE)], stay_open=True))

    code, out, err = await interrupted(
        registry, "instances", "connect", INSTANCE_ID, once_printed="Scan with WhatsApp"
    )

    assert (code, err) == (130, "")
    assert drawn(out, FIRST_CODE) == 1
    await asyncio.wait_for(registry.left.wait(), 5)


async def test_logout_and_delete_print_what_became_of_the_instance(registry, whatlead):
    logged_out = reputation_pb2.Instance(
        id=INSTANCE_ID,
        provider=common_pb2.PROVIDER_WAHA,
        provider_instance_ref="sales-1",
        connection_state=common_pb2.CONNECTION_STATE_LOGGED_OUT,
    )
    registry.answer("LogoutInstance", reputation_pb2.LogoutInstanceResponse(instance=logged_out))
    registry.answer("DeleteInstance", reputation_pb2.DeleteInstanceResponse(instance=logged_out))

    code, out, err = await whatlead("instances", "logout", INSTANCE_ID)
    assert code == 0, err
    assert out.startswith(f"logged out: {INSTANCE_ID}  WAHA sales-1  LOGGED_OUT;")

    code, out, err = await whatlead("instances", "delete", INSTANCE_ID)  # asks nothing
    assert code == 0, err
    assert out.startswith(f"deleted the session: {INSTANCE_ID}  WAHA sales-1  LOGGED_OUT;")
    assert [(call.method, call.request.instance_id) for call in registry.calls] == [
        ("LogoutInstance", INSTANCE_ID),
        ("DeleteInstance", INSTANCE_ID),
    ]


def segno_modules(code: str) -> list[list[bool]]:
    """segno's own matrix of `code` with the CLI's quiet zone around it: what a scanner must see."""
    symbol = segno.make(code, micro=False)
    width = len(symbol.matrix[0]) + 2 * qr.QUIET_ZONE
    light = [[False] * width for _ in range(qr.QUIET_ZONE)]
    inner = [
        [False] * qr.QUIET_ZONE + [bool(m) for m in row] + [False] * qr.QUIET_ZONE for row in symbol.matrix
    ]
    return light + inner + light


@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("code", [FIRST_CODE, "2@" + "x" * 180, "short"])
def test_the_terminal_drawing_is_segnos_matrix_two_modules_a_character(code, colour):
    lines = qr.draw(code, colour=colour)
    if colour:  # black ink on a white ground, whatever the terminal's theme; reset on every line
        assert all(line.startswith(qr.INK_ON_WHITE) and line.endswith(qr.RESET) for line in lines)
        lines = [line.removeprefix(qr.INK_ON_WHITE).removesuffix(qr.RESET) for line in lines]
    halves = {char: halves for halves, char in qr.HALF_BLOCKS.items()}
    read = []
    for line in lines:
        read.append([halves[char][0] for char in line])
        read.append([halves[char][1] for char in line])
    expected = segno_modules(code)
    assert read[: len(expected)] == expected
    assert not any(any(row) for row in read[len(expected) :])  # an odd last half: light
