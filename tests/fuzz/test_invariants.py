"""The store invariants the fuzz tier checks do catch half-written aggregates (rows written by hand here)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message

from executor_service.infrastructure.tables import jobs
from gate_service.infrastructure.tables import intents
from libs.messaging.envelope import encode
from libs.messaging.tables import MessagingTables
from libs.seedwork.ids import new_id
from reputation_service.infrastructure.tables import instances
from tests.fuzz.invariants import connected, executor_problems, gate_problems, reputation_problems
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import gate_events_pb2, reputation_events_pb2
from whatlead.reputation.v1 import reputation_pb2

NOW = datetime.now(UTC)


def _write(url: str, table: Any, row: dict[str, Any]) -> None:
    with connected(url) as connection:
        connection.execute(table.insert().values(**row))
        connection.commit()


def _outbox(url: str, tables: MessagingTables, event: Message) -> None:
    encoded = encode(event)
    _write(
        url,
        tables.outbox,
        dict(
            event_id=encoded.event_id,
            subject=encoded.subject_suffix,
            type_name=encoded.type_name,
            payload=encoded.payload,
            created_at=NOW,
        ),
    )


def _meta(aggregate_id: str) -> common_pb2.EventMeta:
    return common_pb2.EventMeta(event_id=new_id(), organization_id="org", aggregate_id=aggregate_id)


def _intent(**fields: Any) -> dict[str, Any]:
    row = dict(
        id=new_id(),
        organization_id="org",
        target_kind="PHONE",
        target_value="5511987654321",
        type="TEXT",
        purpose="DISPATCH",
        origin="API",
        campaign_id="",
        payload="{}",
        idempotency_key=None,
        request_hash="h",
        status="PENDING",
        decided_by_instance_id=None,
        status_reason=None,
        queued_until=None,
        not_before=None,
        expires_at=NOW + timedelta(hours=1),
        created_at=NOW,
        decided_at=None,
        updated_at=NOW,
        attempts=0,
        decision=None,
        version=1,
    )
    return row | fields


def test_an_approved_intent_without_its_events_or_instance_is_reported(
    migrated_database: Callable[[str], str],
):
    from gate_service.infrastructure.tables import messaging

    url = migrated_database("gate_service")
    created = _intent()
    _write(url, intents, created)
    _outbox(url, messaging, gate_events_pb2.IntentCreated(meta=_meta(created["id"])))
    assert gate_problems(url) == []

    approved = _intent(status="APPROVED")
    _write(url, intents, approved)
    problems = "\n".join(gate_problems(url))
    assert f"intent {approved['id']} (APPROVED) has 0 IntentCreated events" in problems
    assert "has no IntentApproved event" in problems
    assert "a decision record exactly when decided" in problems
    assert "has no deciding instance" in problems


def test_an_event_in_the_outbox_without_its_intent_is_reported(migrated_database: Callable[[str], str]):
    from gate_service.infrastructure.tables import messaging

    url = migrated_database("gate_service")
    orphan = new_id()
    _outbox(url, messaging, gate_events_pb2.IntentCreated(meta=_meta(orphan)))
    assert gate_problems(url) == [f"IntentCreated in the outbox for no intent ({orphan})"]


def test_a_job_for_an_intent_the_gate_never_approved_is_reported(migrated_database: Callable[[str], str]):
    gate_url, executor_url = migrated_database("gate_service"), migrated_database("executor_service")
    job_id, intent_id = new_id(), new_id()
    _write(
        executor_url,
        jobs,
        dict(
            id=job_id,
            intent_id=intent_id,
            organization_id="org",
            instance_id=new_id(),
            provider="SIMULATOR",
            provider_instance_ref="sim-1",
            campaign_id="",
            message="{}",
            status="PROCESSING",
            attempts=1,
            attempts_base=0,
            last_error=None,
            next_attempt_at=NOW,
            lease_until=None,
            lease_token=None,
            client_message_id=None,
            provider_message_id=None,
            delivery_status="NONE",
            held_by_pause=False,
            lease_expirations=0,
            expires_at=None,
            created_at=NOW,
            updated_at=NOW,
            executed_at=None,
            version=1,
        ),
    )
    problems = "\n".join(executor_problems(executor_url, gate_url))
    assert f"job {job_id} (PROCESSING): a lease exactly while PROCESSING" in problems
    assert f"for intent {intent_id}, which the Gate did not approve" in problems


def test_an_instance_changed_without_an_event_is_reported(migrated_database: Callable[[str], str]):
    from reputation_service.infrastructure.tables import messaging

    url = migrated_database("reputation_service")
    instance_id = new_id()
    _write(
        url,
        instances,
        dict(
            id=instance_id,
            organization_id="org",
            display_name="Sales",
            provider="SIMULATOR",
            provider_instance_ref="sim-1",
            phone="5511987654321",
            purposes="DISPATCH",
            connection_state="CONNECTED",
            created_at=NOW,
            updated_at=NOW,
            version=2,  # changed once, but only its registration was written to the outbox
        ),
    )
    registered = reputation_events_pb2.InstanceRegistered(
        meta=_meta(instance_id), instance=reputation_pb2.Instance(id=instance_id, version=1)
    )
    _outbox(url, messaging, registered)
    assert reputation_problems(url) == [
        f"instance {instance_id} (version 2) has events for versions [1] (1 InstanceRegistered)"
    ]
