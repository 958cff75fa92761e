"""What must hold in the stores after any sequence of calls, read straight from the tables.

No half-written aggregate: every intent, job and instance has the events of the state it is in (written in
its transaction through the outbox), and no event lies in an outbox without its row. The values that got
in are values the domain accepts (a fuzzed request either failed whole or stored a valid aggregate), and
the Executor holds jobs only for intents the Gate approved. Each check holds at any instant, not only once
the pipeline has settled: the fuzz tier runs them while the Executor is still sending.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Connection, create_engine, select
from sqlalchemy.pool import NullPool

from executor_service.infrastructure.tables import instances as executor_instances
from executor_service.infrastructure.tables import jobs
from executor_service.infrastructure.tables import messaging as executor_messaging
from gate_service.infrastructure.tables import intents
from gate_service.infrastructure.tables import messaging as gate_messaging
from libs.messaging import envelope
from libs.messaging.tables import MessagingTables
from libs.seedwork.phone import is_group_jid, normalize_phone
from libs.seedwork.shared_kernel import Purpose
from reputation_service.domain.instance import MAX_DISPLAY_NAME
from reputation_service.infrastructure.tables import instances
from reputation_service.infrastructure.tables import messaging as reputation_messaging

# The intent event that each status implies (and every later one keeps: SENT was APPROVED first; a FAILED
# one may have been SENT before its message failed).
GATE_EVENTS_OF_STATUS = {
    "APPROVED": {"IntentApproved"},
    "QUEUED": {"IntentQueued"},
    "BLOCKED": {"IntentBlocked"},
    "DROPPED": {"IntentDropped"},
    "SENT": {"IntentApproved", "IntentSent"},
    "FAILED": {"IntentApproved", "IntentFailed"},
}
JOB_EVENTS_OF_STATUS = {
    "SENT": {"MessageSent"},
    "FAILED": {"MessageFailed"},
    "NEEDS_REVIEW": {"MessageNeedsReview"},
}
APPROVED_OR_LATER = {"APPROVED", "SENT", "FAILED"}


@contextmanager
def connected(database_url: str) -> Iterator[Connection]:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def outbox_events(connection: Connection, tables: MessagingTables) -> dict[str, list[Any]]:
    """Every event in the outbox (published or not), decoded, by aggregate id."""
    events: dict[str, list[Any]] = defaultdict(list)
    rows = connection.execute(select(tables.outbox.c.type_name, tables.outbox.c.payload))
    for type_name, payload in rows:
        event: Any = envelope.decode(cast(str, type_name), cast(bytes, payload))
        events[event.meta.aggregate_id].append(event)
    return events


def _names(events: list[Any]) -> list[str]:
    return [type(event).__name__ for event in events]


def gate_problems(gate_url: str) -> list[str]:
    problems: list[str] = []
    with connected(gate_url) as connection:
        events = outbox_events(connection, gate_messaging)
        rows = connection.execute(select(intents)).mappings().all()
    known = {row["id"] for row in rows}
    for row in rows:
        intent, names = row["id"], _names(events.get(row["id"], []))
        where = f"intent {intent} ({row['status']})"
        if names.count("IntentCreated") != 1:
            problems.append(f"{where} has {names.count('IntentCreated')} IntentCreated events, not 1")
        missing = GATE_EVENTS_OF_STATUS.get(row["status"], set()) - set(names)
        if missing:
            problems.append(f"{where} has no {', '.join(sorted(missing))} event")
        if (row["status"] == "PENDING") != (row["decision"] is None):
            problems.append(f"{where}: a decision record exactly when decided")
        if row["status"] in APPROVED_OR_LATER and not row["decided_by_instance_id"]:
            problems.append(f"{where} has no deciding instance")
        if row["status"] == "QUEUED" and not (
            row["queued_until"] and row["queued_until"] < row["expires_at"]
        ):
            problems.append(f"{where} is queued without a time inside its validity")
        if row["expires_at"] <= row["created_at"]:
            problems.append(f"{where} expired before it was created")
        if row["not_before"] is not None and row["not_before"] >= row["expires_at"]:
            problems.append(f"{where} may not be sent before it expires")
        if not row["organization_id"].strip():
            problems.append(f"{where} has no organization")
        if not _valid_target(row["target_kind"], row["target_value"]):
            problems.append(f"{where} targets {row['target_kind']} {row['target_value']!r}")
    for aggregate in events.keys() - known:
        problems.append(f"{', '.join(_names(events[aggregate]))} in the outbox for no intent ({aggregate})")
    return problems


def _valid_target(kind: str, value: str) -> bool:
    if kind == "PHONE":
        return normalize_phone(value) == value
    return kind == "GROUP" and is_group_jid(value)


def executor_problems(executor_url: str, gate_url: str) -> list[str]:
    problems: list[str] = []
    # Jobs first: a job exists only after its intent's approval was committed, so the Gate, read after,
    # has it (APPROVED, or SENT or FAILED since).
    with connected(executor_url) as connection:
        events = outbox_events(connection, executor_messaging)
        rows = connection.execute(select(jobs)).mappings().all()
        # A health probe's findings are the instance's events (ProviderEventReceived), not a job's.
        probed: set[str] = set(connection.execute(select(executor_instances.c.instance_id)).scalars())
    with connected(gate_url) as connection:
        approved = {
            row.id: row
            for row in connection.execute(
                select(
                    intents.c.id,
                    intents.c.organization_id,
                    intents.c.status,
                    intents.c.decided_by_instance_id,
                )
            )
        }
    known = {row["id"] for row in rows}
    for row in rows:
        names = _names(events.get(row["id"], []))
        where = f"job {row['id']} ({row['status']})"
        missing = JOB_EVENTS_OF_STATUS.get(row["status"], set()) - set(names)
        if missing:
            problems.append(f"{where} has no {', '.join(sorted(missing))} event")
        leased = row["lease_until"] is not None and row["lease_token"] is not None
        if (row["status"] == "PROCESSING") != leased:
            problems.append(f"{where}: a lease exactly while PROCESSING")
        if row["status"] == "SENT" and not (row["executed_at"] and row["provider_message_id"]):
            problems.append(f"{where} is sent without a time or a provider message id")
        if row["status"] == "FAILED" and row["last_error"] is None:
            problems.append(f"{where} failed without an error")
        if not 0 <= row["attempts_base"] <= row["attempts"]:
            problems.append(f"{where} counts {row['attempts']} attempts from {row['attempts_base']}")
        intent = approved.get(row["intent_id"])
        if intent is None or intent.status not in APPROVED_OR_LATER:
            problems.append(f"{where} for intent {row['intent_id']}, which the Gate did not approve")
        elif (intent.organization_id, intent.decided_by_instance_id) != (
            row["organization_id"],
            row["instance_id"],
        ):
            problems.append(f"{where} is not on the organization and instance its intent was approved for")
    for aggregate in events.keys() - known:
        names = _names(events[aggregate])
        if aggregate in probed and set(names) == {"ProviderEventReceived"}:
            continue
        problems.append(f"{', '.join(names)} in the outbox for no job ({aggregate})")
    return problems


def reputation_problems(reputation_url: str) -> list[str]:
    problems: list[str] = []
    with connected(reputation_url) as connection:
        events = outbox_events(connection, reputation_messaging)
        rows = connection.execute(select(instances)).mappings().all()
    known = {row["id"] for row in rows}
    purposes = {p.value for p in Purpose}
    for row in rows:
        where = f"instance {row['id']} (version {row['version']})"
        # One event per version: InstanceRegistered at 1, an InstanceChanged for each change since.
        of_instance = events.get(row["id"], [])
        registry = [e for e in of_instance if type(e).__name__ in ("InstanceRegistered", "InstanceChanged")]
        versions = sorted(event.instance.version for event in registry)
        registered = _names(registry).count("InstanceRegistered")
        if versions != list(range(1, row["version"] + 1)) or registered != 1:
            problems.append(f"{where} has events for versions {versions} ({registered} InstanceRegistered)")
        # Its reputation: each version announced at most once.
        announced = [e.reputation.version for e in of_instance if type(e).__name__ == "ReputationEvaluated"]
        if len(announced) != len(set(announced)):
            problems.append(f"{where} has its reputation announced at versions {sorted(announced)}")
        if row["phone"] and normalize_phone(row["phone"]) != row["phone"]:
            problems.append(f"{where} has phone {row['phone']!r}")
        names = row["display_name"]
        if len(names) > MAX_DISPLAY_NAME or names != names.strip():
            problems.append(f"{where} has display name {names[:40]!r}…")
        stored = set(row["purposes"].split(",")) if row["purposes"] else set()
        if not stored or not stored <= purposes:
            problems.append(f"{where} has purposes {row['purposes']!r}")
    for aggregate in events.keys() - known:
        problems.append(f"{', '.join(_names(events[aggregate]))} in the outbox for no instance ({aggregate})")
    return problems
