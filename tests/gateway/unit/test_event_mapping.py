"""ProviderEvent → ProviderEventReceived: ids that make retries collapse, and every field carried."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import protovalidate

from gateway.domain.events import ProviderEvent, ProviderEventKind, Restriction
from gateway.infrastructure.proto_mapping import EVENT_ID_NAMESPACE, event_id, to_proto
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import ConnectionState, Provider
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import provider_events_pb2

RECEIVED = datetime(2026, 11, 20, 12, 0, 5, tzinfo=UTC)
INSTANCE = new_id()
READ = ProviderEvent(
    kind=ProviderEventKind.MESSAGE_READ,
    provider=Provider.WAHA,
    instance_id=INSTANCE,
    provider_instance_ref="sales-03",
    occurred_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
    provider_message_id="true_5511987650000@c.us_3EB0A1B2C3D4E5F60718",
    remote_jid="5511987650000@c.us",
    from_me=True,
)


def test_the_same_fact_gets_the_same_event_id_and_another_fact_another():
    again = to_proto(dataclasses.replace(READ), received_at=datetime.now(UTC))
    delivered_instead = dataclasses.replace(READ, kind=ProviderEventKind.MESSAGE_DELIVERED)
    delivered = to_proto(delivered_instead, received_at=RECEIVED)

    assert to_proto(READ, received_at=RECEIVED).meta.event_id == again.meta.event_id
    assert delivered.meta.event_id != again.meta.event_id


def test_a_receipt_correlates_on_its_message_and_is_about_the_instance():
    event = to_proto(READ, received_at=RECEIVED)

    assert event.type == provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_READ
    assert event.provider == common_pb2.PROVIDER_WAHA
    assert (event.instance_id, event.meta.aggregate_id) == (INSTANCE, INSTANCE)
    assert event.meta.correlation_id == READ.provider_message_id == event.provider_message_id
    assert event.occurred_at.ToDatetime(UTC) == READ.occurred_at
    assert (event.remote_jid, event.from_me) == ("5511987650000@c.us", True)
    protovalidate.validate(event)


def test_a_message_id_too_long_for_the_meta_correlates_on_the_instance_and_still_validates():
    group_ack = dataclasses.replace(READ, provider_message_id="true_120363025246125888@g.us_" + "A" * 40)

    event = to_proto(group_ack, received_at=RECEIVED)

    assert event.meta.correlation_id == INSTANCE
    assert event.provider_message_id == group_ack.provider_message_id
    protovalidate.validate(event)


def test_a_ban_and_a_time_lock_carry_their_details_and_an_undated_event_its_arrival():
    ban = ProviderEvent(
        kind=ProviderEventKind.INSTANCE_BANNED,
        provider=Provider.WUZAPI,
        instance_id=INSTANCE,
        provider_instance_ref="u1",
        occurred_at=None,
        ban_code="406",
        restriction=Restriction.PERMANENT,
        connection_state=ConnectionState.BANNED,
        timelock_until=datetime(2026, 11, 21, tzinfo=UTC),
    )

    event = to_proto(ban, received_at=RECEIVED)

    assert event.restriction_kind == common_pb2.RESTRICTION_KIND_PERMANENT_BAN
    assert event.connection_state == common_pb2.CONNECTION_STATE_BANNED
    assert event.ban_code == "406"
    assert event.timelock_until.ToDatetime(UTC) == datetime(2026, 11, 21, tzinfo=UTC)
    assert not event.HasField("occurred_at")
    assert event.meta.occurred_at.ToDatetime(UTC) == RECEIVED


def test_the_event_id_is_the_uuid5_of_the_dedup_key():
    assert event_id(READ) == str(uuid.uuid5(EVENT_ID_NAMESPACE, READ.dedup_key))


def test_a_message_failed_by_a_463_carries_its_code_and_the_time_lock_it_means():
    failed = dataclasses.replace(
        READ,
        kind=ProviderEventKind.MESSAGE_FAILED,
        error_code="463",
        restriction=Restriction.REACHOUT_TIMELOCK,
        timelock_until=datetime(2026, 11, 21, 12, tzinfo=UTC),
    )

    event = to_proto(failed, received_at=RECEIVED)

    assert event.type == provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_FAILED
    assert event.error_code == "463"
    assert event.restriction_kind == common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK
    assert event.timelock_until.ToDatetime(UTC) == datetime(2026, 11, 21, 12, tzinfo=UTC)
    protovalidate.validate(event)


def test_a_lifted_time_lock_has_its_own_type():
    lifted = ProviderEvent(
        kind=ProviderEventKind.REACHOUT_TIMELOCK_LIFTED,
        provider=Provider.WAHA,
        instance_id=INSTANCE,
        provider_instance_ref="sales-03",
        occurred_at=None,
        provider_event_id="evt_01jd4r8a1b2c3d4e5f6g7h8j9k",
        connection_state=ConnectionState.CONNECTED,
    )

    event = to_proto(lifted, received_at=RECEIVED)

    assert event.type == provider_events_pb2.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCK_LIFTED
    assert not event.error_code and not event.restriction_kind
    protovalidate.validate(event)


def test_every_event_the_gateway_publishes_came_by_webhook():
    for kind in ProviderEventKind:
        event = to_proto(dataclasses.replace(READ, kind=kind), received_at=RECEIVED)
        assert event.origin == provider_events_pb2.PROVIDER_EVENT_ORIGIN_WEBHOOK
