"""Reputation as the running service keeps it: real events on the Executor's and the gateway's streams,
real PostgreSQL, its own events read back from the reputation stream, GetReputation over gRPC. One 463
reported by both the Executor and the provider's webhook cools the number once; the cooldown ends on its
own; a restart that replays both streams announces nothing again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from libs.rpc.convert import to_timestamp
from libs.seedwork.clock import SystemClock
from libs.seedwork.ids import new_id
from libs.testing.jetstream import publish, stored_events
from libs.testing.services import running_service
from libs.testing.waiting import eventually
from reputation_service.bootstrap import build
from reputation_service.config import ReputationSettings
from tests.conftest import NATS_URL
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import executor_events_pb2, provider_events_pb2, reputation_events_pb2
from whatlead.executor.v1 import executor_pb2
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

ORG = "org-reputation-streams"
PT = provider_events_pb2
COOLDOWN_SECONDS = 3


@pytest.fixture
def settings(migrated_database, subject_root, jetstream) -> ReputationSettings:
    return ReputationSettings.model_validate(
        {
            "database_url": migrated_database("reputation_service"),
            "nats_url": NATS_URL,
            "subject_root": subject_root,
            "evaluation_debounce_seconds": 0.5,
            "evaluation_poll_seconds": 0.1,
            "reputation_pass_interval_seconds": 0.5,
            # The organization's own ladder: a first time-lock cools for 3 s, a repeat for 6 s.
            "organization_thresholds": {
                ORG: {"timelock_cooldowns": [COOLDOWN_SECONDS, 2 * COOLDOWN_SECONDS]}
            },
        }
    )


def _meta(organization: str = "") -> common_pb2.EventMeta:
    return common_pb2.EventMeta(
        event_id=new_id(), organization_id=organization, occurred_at=to_timestamp(SystemClock().now())
    )


def executor_463(instance_id: str) -> executor_events_pb2.MessageFailed:
    return executor_events_pb2.MessageFailed(
        meta=_meta(ORG),
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
        failed_at=to_timestamp(SystemClock().now()),
    )


def webhook_463(instance_id: str) -> PT.ProviderEventReceived:
    return PT.ProviderEventReceived(
        meta=_meta(),
        type=PT.PROVIDER_EVENT_TYPE_MESSAGE_FAILED,
        provider=common_pb2.PROVIDER_WAHA,
        instance_id=instance_id,
        provider_instance_ref="sales-1",
        provider_message_id="true_5511988887777@c.us_3EB0ABC",
        from_me=True,
        occurred_at=to_timestamp(SystemClock().now()),
        origin=PT.PROVIDER_EVENT_ORIGIN_WEBHOOK,
        error_code="463",
    )


def with_new_event_id(
    event: executor_events_pb2.MessageFailed | PT.ProviderEventReceived,
) -> executor_events_pb2.MessageFailed | PT.ProviderEventReceived:
    again = type(event).FromString(event.SerializeToString())
    again.meta.event_id = new_id()
    return again


async def reputation_events(js: Any, root: str, instance_id: str) -> list[Any]:
    events = await stored_events(js, root, "reputation", wait=0.3)
    return [
        e
        for e in events
        if isinstance(e, reputation_events_pb2.ReputationEvaluated | reputation_events_pb2.CooldownStarted)
        and e.meta.aggregate_id == instance_id
    ]


async def test_a_463_from_both_streams_cools_the_number_once_and_the_cooldown_ends_on_its_own(
    settings, jetstream, subject_root
):
    async with running_service(build, settings) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        instance = (
            await stub.RegisterInstance(
                reputation_pb2.RegisterInstanceRequest(
                    organization_id=ORG,
                    display_name="Sales",
                    provider=common_pb2.PROVIDER_WAHA,
                    provider_instance_ref=f"sales-{new_id()}",
                    phone="5511987654321",
                    purposes=[common_pb2.PURPOSE_DISPATCH],
                    connection_state=common_pb2.CONNECTION_STATE_CONNECTED,
                )
            )
        ).instance
        history: list[executor_events_pb2.MessageFailed | PT.ProviderEventReceived] = [
            executor_463(instance.id),
            webhook_463(instance.id),
        ]
        published_at = asyncio.get_running_loop().time()
        await publish(jetstream, subject_root, history[0])
        await publish(jetstream, subject_root, history[1])

        async def cooled() -> bool:
            events = await reputation_events(jetstream, subject_root, instance.id)
            return any(isinstance(e, reputation_events_pb2.CooldownStarted) for e in events)

        await eventually(cooled, timeout=10, every=0.05)
        took = asyncio.get_running_loop().time() - published_at
        print(f"\n463 published -> CooldownStarted on the reputation stream: {took * 1000:.0f} ms")

        got = await stub.GetReputation(
            reputation_pb2.GetReputationRequest(organization_id=ORG, instance_id=instance.id)
        )
        assert got.reputation.cooldown_reason == reputation_pb2.COOLDOWN_REASON_REACHOUT_TIMELOCK
        explanation = got.explanation
        assert explanation.trigger == "restriction:REACHOUT_TIMELOCK"
        assert explanation.cooldown.reason == reputation_pb2.COOLDOWN_REASON_REACHOUT_TIMELOCK
        assert explanation.cooldown.restriction_kind == common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK
        assert explanation.cooldown.step == 0
        assert (
            explanation.cooldown.until.ToDatetime() - explanation.cooldown.started_at.ToDatetime()
        ).total_seconds() == COOLDOWN_SECONDS
        assert sum(t.contribution for t in explanation.terms) == explanation.score == got.reputation.score
        assert [term.name for term in explanation.terms] == ["previous score", "restrictions"]

        # The cooldown ends on its own: the periodic pass announces the number without one.
        async def ended() -> bool:
            events = await reputation_events(jetstream, subject_root, instance.id)
            last = [e for e in events if isinstance(e, reputation_events_pb2.ReputationEvaluated)][-1]
            return not last.reputation.HasField("cooldown_until")

        await eventually(ended, timeout=COOLDOWN_SECONDS + 10, every=0.2)

    before = await reputation_events(jetstream, subject_root, instance.id)
    started = [e for e in before if isinstance(e, reputation_events_pb2.CooldownStarted)]
    assert len(started) == 1  # one 463, reported twice: one cooldown
    assert started[0].reason == reputation_pb2.COOLDOWN_REASON_REACHOUT_TIMELOCK
    assert started[0].restriction_kind == common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK

    # A restart: the same events again (replayed: the inbox knows them) and the same reports under new
    # event ids (a provider re-sending its webhook: the same facts) start nothing, announce nothing.
    async with running_service(build, settings):
        for event in history:
            await publish(jetstream, subject_root, event, message_id=new_id())
            await publish(jetstream, subject_root, with_new_event_id(event))
        await asyncio.sleep(2)
    assert await reputation_events(jetstream, subject_root, instance.id) == before
