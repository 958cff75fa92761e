"""`whatlead watch` against a fake OpsService: one line per change, and a watch that resumes by itself from
the last position it printed when the server cuts it (RESOURCE_EXHAUSTED) or goes away (UNAVAILABLE), so
the user never loses or repeats a line; what cannot be resumed ends it with a clear error."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from libs.cli.common import Backoff
from libs.rpc.convert import to_timestamp
from tests.libs.cli.conftest import API_KEY, interrupted
from tests.libs.cli.fake_services import Script
from whatlead.gate.v1 import gate_pb2
from whatlead.ops.v1 import ops_pb2

INTENT = "0193a1b2-0000-7000-8000-0000000000aa"
INSTANCE = "0193a1b2-0000-7000-8000-000000000001"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
FAST = ("--retry-delay", "0.001")  # the backoff, shortened for the test
ATTEMPTS = Backoff().attempts


@pytest.fixture(autouse=True)
def api_key(ops, monkeypatch):
    monkeypatch.setenv("WHATLEAD_API_KEY", API_KEY)


def change(
    position: int, kind: ops_pb2.IntentChangeKind.ValueType = ops_pb2.INTENT_CHANGE_KIND_SENT, **fields
) -> ops_pb2.WatchIntentsResponse:
    return ops_pb2.WatchIntentsResponse(
        position=str(position),
        change=ops_pb2.IntentChange(
            organization_id="org-1",
            intent_id=INTENT,
            kind=kind,
            occurred_at=to_timestamp(T0 + timedelta(milliseconds=position)),
            **fields,
        ),
    )


def positions(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()]


async def test_watch_prints_one_line_per_change_with_position_time_intent_kind_instance_and_why(
    ops, whatlead
):
    ops.stream(
        "WatchIntents",
        Script(
            [
                change(
                    3,
                    ops_pb2.INTENT_CHANGE_KIND_QUEUED,
                    reason=gate_pb2.DECISION_REASON_RATE_LIMIT,
                    summary="queued until 10:01",
                ),
                change(5, ops_pb2.INTENT_CHANGE_KIND_APPROVED, instance_id=INSTANCE),
                change(8, ops_pb2.INTENT_CHANGE_KIND_READ, instance_id=INSTANCE, summary="read"),
            ]
        ),
    )

    code, out, err = await whatlead("watch", "--intent", INTENT, "--campaign", "black-friday")

    assert code == 0, err
    [call] = ops.calls
    assert call.metadata["authorization"] == f"Bearer {API_KEY}"  # the key goes on the stream too
    assert (call.request.intent_id, call.request.campaign_id, call.request.after_position) == (
        INTENT,
        "black-friday",
        "",
    )
    assert [line.split() for line in out.splitlines()] == [
        ["3", "2026-03-02", "10:00:00.003", INTENT, "QUEUED", "-", "RATE_LIMIT", "queued", "until", "10:01"],
        ["5", "2026-03-02", "10:00:00.005", INTENT, "APPROVED", INSTANCE, "-"],
        ["8", "2026-03-02", "10:00:00.008", INTENT, "READ", INSTANCE, "read"],
    ]  # fmt: skip
    assert out.splitlines()[0].index("QUEUED") == out.splitlines()[2].index("READ")  # aligned


async def test_a_cut_stream_resumes_from_the_last_position_printed_losing_and_repeating_nothing(
    ops, whatlead
):
    ops.stream(
        "WatchIntents",
        Script([change(5), change(7)], end=(grpc.StatusCode.RESOURCE_EXHAUSTED, "too slow: resume after 7")),
        Script([], end=(grpc.StatusCode.UNAVAILABLE, "ops is restarting")),  # nothing new: resume after 7
        Script([change(9)], end=(grpc.StatusCode.UNAVAILABLE, "ops is restarting")),
        Script([change(12), change(13)]),
    )

    code, out, err = await whatlead("watch", "--after", "3", *FAST)

    assert code == 0, err
    assert [request.after_position for request in ops.requests("WatchIntents")] == ["3", "7", "7", "9"]
    assert positions(out) == ["5", "7", "9", "12", "13"]
    assert err.splitlines() == [
        "# the server cut the stream (this watcher fell behind): resuming with --after 7 in 0.0 s",
        "# the server is unavailable: resuming with --after 7 in 0.0 s",
        "# the server is unavailable: resuming with --after 9 in 0.0 s",
    ]


async def test_a_stream_cut_before_its_first_change_resumes_from_where_the_server_said_it_started(
    ops, whatlead
):
    ops.stream(
        "WatchIntents",
        Script([], end=(grpc.StatusCode.UNAVAILABLE, "ops is restarting"), start_position="41"),
        Script([change(42), change(44)], start_position="41"),
    )

    code, out, err = await whatlead("watch", *FAST)

    assert code == 0, err
    # From now, then from the position the first stream started after: the changes in between are kept.
    assert [request.after_position for request in ops.requests("WatchIntents")] == ["", "41"]
    assert positions(out) == ["42", "44"]
    assert err.splitlines() == ["# the server is unavailable: resuming with --after 41 in 0.0 s"]


async def test_a_server_that_stays_away_ends_the_watch_after_a_bounded_number_of_attempts(ops, whatlead):
    ops.stream(
        "WatchIntents",
        Script([change(4)], end=(grpc.StatusCode.UNAVAILABLE, "down")),
        *[Script([], end=(grpc.StatusCode.UNAVAILABLE, "down"))] * (ATTEMPTS + 5),
    )

    code, out, err = await whatlead("watch", *FAST)

    assert code == 64 + 14 and positions(out) == ["4"]  # UNAVAILABLE
    assert len(ops.requests("WatchIntents")) == 1 + ATTEMPTS
    assert err.splitlines()[-1] == (
        f"error: UNAVAILABLE: down (the server is unavailable; gave up after {ATTEMPTS} attempts; "
        "watch again with --after 4)"
    )


async def test_ctrl_c_ends_the_watch_cleanly_and_closes_the_stream(ops):
    ops.stream("WatchIntents", Script([change(5)], stay_open=True))

    code, out, err = await interrupted(ops, "watch", once_printed=INTENT)

    assert (code, err) == (130, "")
    assert positions(out) == ["5"]
    await asyncio.wait_for(ops.left.wait(), 5)


async def test_a_position_too_old_ends_the_watch_with_what_to_do(ops, whatlead):
    ops.stream("WatchIntents", Script([], end=(grpc.StatusCode.OUT_OF_RANGE, "position 3 is gone")))

    code, out, err = await whatlead("watch", "--after", "3", *FAST)

    assert code == 64 + 11 and out == ""  # OUT_OF_RANGE
    assert err.startswith("error: OUT_OF_RANGE: position 3 is gone (position 3 is older than what the server")
    assert "without --after" in err
    assert len(ops.requests("WatchIntents")) == 1  # not resumed


async def test_a_refused_key_ends_the_watch_at_once_naming_where_the_key_came_from(ops, whatlead):
    ops.refusal = (grpc.StatusCode.PERMISSION_DENIED, "members only")

    code, out, err = await whatlead("watch", *FAST)

    assert code == 64 + 7 and out == ""  # PERMISSION_DENIED
    assert err == (
        "error: PERMISSION_DENIED: members only (the API key's role does not allow this; "
        "key from WHATLEAD_API_KEY)\n"
    )
    assert len(ops.requests("WatchIntents")) == 1
