"""`whatlead reputation <instance>` against the running service: a new number's first state, then the same
number cooled by a 463 the Executor reported, with the cooldown's end and cause and the score's terms."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from libs.cli.main import main
from libs.rpc.convert import to_timestamp
from libs.seedwork.clock import SystemClock
from libs.seedwork.ids import new_id
from libs.testing.jetstream import publish
from libs.testing.waiting import eventually
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import executor_events_pb2
from whatlead.executor.v1 import executor_pb2

ORG = "org-reputation-cli"


@pytest.fixture
def whatlead(registry, monkeypatch, capsys, cli_credentials):
    """Runs `whatlead` in a thread (its gRPC calls block; this loop serves them): code, stdout, stderr."""
    monkeypatch.setenv("WHATLEAD_REPUTATION_ADDR", registry.address)

    async def run(*args: str, org: str = ORG) -> tuple[int, str, str]:
        monkeypatch.setenv("WHATLEAD_API_KEY", registry.key(org))  # a key of the organization named
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["--org", org, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def test_reputation_shows_a_cooldown_until_when_and_why(whatlead, jetstream, subject_root):
    _, out, _ = await whatlead(
        "instances", "register", "--provider", "waha", "--ref", f"cli-{new_id()}", "--phone", "+5511987654321"
    )
    instance_id = json.loads(out)["id"]

    code, out, err = await whatlead("reputation", instance_id)
    assert code == 0, err
    assert "score      70\n" in out and "health     HEALTHY" in out and "phase      NEWBORN" in out
    assert "cooldown   none" in out and "not evaluated from its signals yet" in out

    now = SystemClock().now()
    await publish(
        jetstream,
        subject_root,
        executor_events_pb2.MessageFailed(
            meta=common_pb2.EventMeta(event_id=new_id(), organization_id=ORG, occurred_at=to_timestamp(now)),
            job_id=new_id(),
            intent_id=new_id(),
            instance_id=instance_id,
            provider=common_pb2.PROVIDER_WAHA,
            error=executor_pb2.JobError(
                error_class=executor_pb2.ERROR_CLASS_RESTRICTED,
                code="reachout_timelock",
                restriction_kind=common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK,
            ),
            attempts=1,
            failed_at=to_timestamp(now),
        ),
    )

    async def cooled() -> bool:
        return "cooldown   until" in (await whatlead("reputation", instance_id))[1]

    await eventually(cooled, timeout=15, every=0.2)
    _, out, _ = await whatlead("reputation", instance_id)
    assert "score      50  (was 70)" in out
    assert "REACHOUT_TIMELOCK: REACHOUT_TIMELOCK reported by the provider" in out
    assert "(in 29m" in out or "(in 30m" in out  # the first step of the default ladder
    assert "alerts     RESTRICTED" in out
    assert " -20  restrictions" in out and "why (last change: restriction:REACHOUT_TIMELOCK" in out
    assert "cooldown started: REACHOUT_TIMELOCK step 0, REACHOUT_TIMELOCK" in out

    code, _, err = await whatlead("reputation", instance_id, org="org-someone-else")
    assert code == 64 + grpc.StatusCode.NOT_FOUND.value[0] and "NOT_FOUND" in err
