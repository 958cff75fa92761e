"""Typed events on JetStream for integration tests: published the way the outbox relay publishes them, and
read back the way they were stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from libs.messaging import envelope
from libs.rpc.convert import to_timestamp
from libs.seedwork.ids import new_id
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import ops_events_pb2, reputation_events_pb2
from whatlead.ops.v1 import ops_pb2
from whatlead.reputation.v1 import reputation_pb2


async def publish(js: Any, subject_root: str, event: Message, *, message_id: str | None = None) -> None:
    """With the relay's headers. A `message_id` other than the event's id gets the event stored again,
    as a re-send after JetStream's duplicate window would."""
    encoded = envelope.encode(event)
    await js.publish(
        envelope.full_subject(subject_root, encoded.subject_suffix),
        encoded.payload,
        headers={
            envelope.MSG_ID_HEADER: message_id or encoded.event_id,
            envelope.TYPE_HEADER: encoded.type_name,
        },
    )


def meta(organization_id: str, aggregate_id: str, *, event_id: str | None = None) -> common_pb2.EventMeta:
    """The meta of an event another context publishes now, correlated to its aggregate."""
    return common_pb2.EventMeta(
        event_id=event_id or new_id(),
        organization_id=organization_id,
        aggregate_id=aggregate_id,
        correlation_id=aggregate_id,
        occurred_at=to_timestamp(datetime.now(UTC)),
    )


def intent_changed(
    organization_id: str, intent_id: str, kind: ops_pb2.IntentChangeKind.ValueType, **change: Any
) -> ops_events_pb2.IntentChanged:
    """A change of an intent as ops publishes it for the live streams, happening now; `change`: the
    IntentChange's other fields."""
    event_meta = meta(organization_id, intent_id)
    return ops_events_pb2.IntentChanged(
        meta=event_meta,
        change=ops_pb2.IntentChange(
            organization_id=organization_id,
            intent_id=intent_id,
            kind=kind,
            occurred_at=event_meta.occurred_at,
            **change,
        ),
    )


def simulator_instance_registered(
    organization_id: str,
    instance_id: str,
    *,
    provider_instance_ref: str,
    purposes: tuple[common_pb2.Purpose.ValueType, ...] = (common_pb2.PURPOSE_DISPATCH,),
    phone: str = "447700900000",
) -> reputation_events_pb2.InstanceRegistered:
    """A connected instance on the provider simulator, as the reputation context announces it. Its phone is
    by default a UK drama number no test sends to (the Gate never lets a number send to its own phone)."""
    return reputation_events_pb2.InstanceRegistered(
        meta=meta(organization_id, instance_id),
        instance=reputation_pb2.Instance(
            id=instance_id,
            organization_id=organization_id,
            display_name="test",
            provider=common_pb2.PROVIDER_SIMULATOR,
            provider_instance_ref=provider_instance_ref,
            phone=phone,
            purposes=list(purposes),
            connection_state=common_pb2.CONNECTION_STATE_CONNECTED,
            version=1,
        ),
    )


async def stored_events(
    js: Any, subject_root: str, context: str, *, subject_suffix: str = "", wait: float = 0.5
) -> list[Message]:
    """Every event in `context`'s stream (only one subject's with `subject_suffix`), decoded, oldest first.
    The stream counts as read once no more arrives within `wait` seconds."""
    subjects = (
        envelope.full_subject(subject_root, subject_suffix)
        if subject_suffix
        else envelope.context_subjects(subject_root, context)
    )
    # No acks and a consumer of our own: reading leaves the stream as the services see it.
    sub = await js.pull_subscribe(
        subjects,
        stream=envelope.stream_name(subject_root, context),
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    found: list[Message] = []
    try:
        while True:
            try:
                batch = await sub.fetch(1000, timeout=wait)
            except TimeoutError:
                break
            found += [envelope.decode(m.headers[envelope.TYPE_HEADER], m.data) for m in batch]
    finally:
        await sub.unsubscribe()
    return found


async def directory_key(js: Any, subject_root: str, organization_id: str) -> str:
    """A new OWNER key of the organization, put in the run's key directory as ops puts one (services on
    `subject_root` know it once loaded, or a moment later while running); its secret."""
    from libs.messaging.key_directory import ensure_key_directory, put_key
    from libs.seedwork.api_keys import issue_key
    from whatlead.events.v1 import ops_events_pb2
    from whatlead.ops.v1 import ops_pb2

    issued = issue_key()
    record = ops_events_pb2.ApiKeyCreated(
        api_key=ops_pb2.ApiKey(
            id=new_id(), organization_id=organization_id, role=ops_pb2.MEMBER_ROLE_OWNER, prefix=issued.prefix
        ),
        secret_sha256=issued.sha256,
    )
    await put_key(await ensure_key_directory(js, subject_root), record)
    return issued.secret
