"""Rate windows that Redis lost are rebuilt from the Gate's approved intents before another slot is taken
(ADR 0013): the store against a real Redis with a fake history, the history against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from gate_service.domain.decision import DecisionReason
from gate_service.domain.policies import RateCaps
from gate_service.domain.rates import (
    ContactUsage,
    InstanceUsage,
    PlanUsage,
    Reservation,
    SentWindows,
    next_hour,
)
from gate_service.infrastructure import redis_rate_store
from gate_service.infrastructure.redis_rate_store import RedisRateStore
from gate_service.infrastructure.sent_history import SqlAlchemySentHistory, id_floor
from gate_service.infrastructure.tables import intents
from libs.db.engine import create_engine, session_factory
from libs.seedwork.clock import FakeClock
from libs.seedwork.ids import new_id
from tests.gate_service.unit.fakes import FakeSentHistory

NOW = datetime(2026, 11, 29, 18, 30, 15, 250_000, tzinfo=UTC)  # whole milliseconds, as Redis keeps them
ORG = "org-rebuild"
PHONE = "5511900000001"


def reservation(instance: str, *, target: str = PHONE, per_hour: int = 5, now: datetime = NOW) -> Reservation:
    return Reservation(
        organization_id=ORG,
        target=target,
        instance_id=instance,
        now=now,
        caps=RateCaps(per_minute=0, per_hour=per_hour, per_day=0, min_interval=timedelta(0)),
        contact_min_gap=timedelta(0),
        contact_per_hour=0,
        plan_daily_cap=0,
        plan_monthly_cap=0,
    )


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return f"{redis_prefix}rebuild:{new_id()[-8:]}:"


async def wipe(redis_client, prefix: str) -> None:
    """What a Redis restart without persistence does to this store: only this test's keys."""
    async for key in redis_client.scan_iter(match=f"{prefix}*", count=1000):
        await redis_client.delete(key)


def used(instance: str, hour: int, *, last: datetime | None = None) -> SentWindows:
    return SentWindows(
        at=NOW,
        instances={instance: InstanceUsage(minute=1, hour=hour, day=hour, last_sent_at=last or NOW)},
        contacts={(ORG, PHONE): ContactUsage(hour=1, last_sent_at=last or NOW, last_instance_id=instance)},
        plans={ORG: PlanUsage(day=hour, month=hour)},
    )


async def test_a_store_that_lost_its_windows_counts_the_approved_intents_before_taking_a_slot(
    redis_client, prefix
):
    instance = new_id()
    history = FakeSentHistory(used(instance, hour=4))
    store = RedisRateStore(redis_client, prefix=prefix, history=history)
    await store.reserve(reservation(instance, target="5511900000002"))  # the marker is set on first use
    await wipe(redis_client, prefix)

    first = await store.reserve(reservation(instance, target="5511900000003"))
    second = await store.reserve(reservation(instance, target="5511900000004"))

    assert first.ok  # 4 approved + this one = the cap of 5
    assert (second.ok, second.reason, second.retry_at) == (False, DecisionReason.RATE_LIMIT, next_hour(NOW))
    snapshot = await store.snapshot(ORG, PHONE, [instance], NOW)
    assert snapshot.usage(instance) == InstanceUsage(minute=2, hour=5, day=5, last_sent_at=NOW)
    assert (snapshot.sticky_instance_id, snapshot.contact_hour, snapshot.org_day) == (instance, 1, 5)


async def test_a_burst_that_finds_the_windows_lost_rebuilds_them_once(redis_client, prefix):
    instance = new_id()
    history = FakeSentHistory(used(instance, hour=3))
    store = RedisRateStore(redis_client, prefix=prefix, history=history, settle=timedelta(seconds=0.05))

    results = await asyncio.gather(
        *(store.reserve(reservation(instance, target=f"55119000{n:05d}", per_hour=10)) for n in range(40))
    )

    assert history.reads == 1
    assert sum(r.ok for r in results) == 10 - 3


class HeldHistory(FakeSentHistory):
    """A history whose read finishes only when the test lets it: a slow rebuild of another process."""

    def __init__(self, windows: SentWindows) -> None:
        super().__init__(windows)
        self.reading = asyncio.Event()
        self.let_go = asyncio.Event()

    async def current_windows(self) -> SentWindows:
        self.reading.set()
        await self.let_go.wait()
        return await super().current_windows()


async def test_processes_rebuilding_at_once_count_neither_twice_nor_over_a_newer_slot(redis_client, prefix):
    """Two Gate processes find the windows lost together: the first rebuild is written, the slower one
    (read before a slot was taken on the first's windows) is dropped, and that slot stays counted."""
    instance = new_id()
    windows = used(instance, hour=3)
    slow_history = HeldHistory(windows)
    fast = RedisRateStore(redis_client, prefix=prefix, history=FakeSentHistory(windows))
    slow = RedisRateStore(redis_client, prefix=prefix, history=slow_history)

    slow_rebuild = asyncio.ensure_future(slow.restore())
    await slow_history.reading.wait()
    assert (await fast.reserve(reservation(instance, target="5511900000002"))).ok
    slow_history.let_go.set()
    await slow_rebuild

    snapshot = await slow.snapshot(ORG, PHONE, [instance], NOW)
    assert (snapshot.usage(instance).hour, snapshot.org_day) == (4, 4)


async def test_a_slot_taken_before_the_loss_and_given_back_after_the_rebuild_frees_nothing(
    redis_client, prefix
):
    """It was never committed, so the approved intents did not count it: giving it back would free a slot
    another intent holds."""
    instance = new_id()
    history = FakeSentHistory(used(instance, hour=5))
    store = RedisRateStore(redis_client, prefix=prefix, history=history)
    await store.restore()  # the windows are whole when it is taken
    before = reservation(instance, target="5511900000002", per_hour=6, now=NOW - timedelta(seconds=2))
    assert (await store.reserve(before)).ok
    await wipe(redis_client, prefix)

    assert (await store.reserve(reservation(instance, target="5511900000003", per_hour=6))).ok
    await store.release(before)

    assert not (await store.reserve(reservation(instance, target="5511900000004", per_hour=6))).ok


async def test_a_slot_taken_after_waiting_for_the_rebuild_and_given_back_frees_it(redis_client, prefix):
    """Its time is older than the rebuild's, yet the rebuilt windows count it: a call refused after its
    reservation (say, by the database) must not leave its slot taken."""
    instance = new_id()
    store = RedisRateStore(redis_client, prefix=prefix, history=FakeSentHistory(used(instance, hour=5)))
    waited = reservation(instance, target="5511900000002", per_hour=6, now=NOW - timedelta(seconds=2))
    assert (await store.reserve(waited)).ok  # the windows were missing: rebuilt first, then taken
    await store.release(waited)

    assert (await store.reserve(reservation(instance, target="5511900000003", per_hour=6))).ok


async def test_windows_lost_again_are_rebuilt_again(redis_client, prefix):
    instance = new_id()
    history = FakeSentHistory(used(instance, hour=2))
    store = RedisRateStore(redis_client, prefix=prefix, history=history)
    for _ in range(3):
        await wipe(redis_client, prefix)
        assert (await store.reserve(reservation(instance, target="5511900000002", per_hour=3))).ok
        assert not (await store.reserve(reservation(instance, target="5511900000003", per_hour=3))).ok
    assert history.reads == 3


# --- the history: what PostgreSQL says the windows hold -------------------------------------------------


def intent_row(
    *, instance: str, target: str, status: str, decided: datetime | None, created: datetime | None = None
) -> dict[str, object]:
    created = created or (decided or NOW) - timedelta(seconds=1)
    return {
        "id": id_floor(created)[:-22] + "7000-8000-" + secrets.token_hex(6),
        "organization_id": ORG,
        "target_kind": "PHONE",
        "target_value": target,
        "type": "TEXT",
        "purpose": "DISPATCH",
        "origin": "API",
        "campaign_id": "",
        "payload": "{}",
        "request_hash": "h",
        "status": status,
        "decided_by_instance_id": instance if decided else None,
        "decided_at": decided,
        "expires_at": created + timedelta(hours=4),
        "created_at": created,
        "updated_at": decided or created,
        "attempts": 1,
        "version": 1,
    }


async def test_the_history_counts_approved_sent_and_failed_intents_by_their_decision_time(migrated_database):
    engine = create_engine(migrated_database("gate_service"))
    a, b = new_id(), new_id()
    minute_ago, hours_ago = NOW - timedelta(seconds=50), NOW - timedelta(hours=2)
    rows = [
        intent_row(instance=a, target=PHONE, status="APPROVED", decided=NOW - timedelta(seconds=5)),
        intent_row(instance=a, target=PHONE, status="SENT", decided=minute_ago),  # earlier minute
        intent_row(instance=a, target="5511900000002", status="FAILED", decided=hours_ago),
        # decided now, created two days ago (a long validity): counted
        intent_row(
            instance=b, target="5511900000003", status="SENT", decided=NOW, created=NOW - timedelta(days=2)
        ),
        intent_row(instance=b, target="5511900000004", status="SENT", decided=NOW - timedelta(days=3)),
        intent_row(instance=a, target=PHONE, status="QUEUED", decided=None),  # took no slot
        intent_row(instance=b, target=PHONE, status="BLOCKED", decided=None),
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(intents), rows)
    history = SqlAlchemySentHistory(
        session_factory(engine),
        FakeClock(NOW),
        max_validity=timedelta(hours=72),
        contact_memory=timedelta(seconds=6),
    )
    try:
        windows = await history.current_windows()
    finally:
        await engine.dispose()

    assert windows.at == NOW
    assert windows.instances == {
        a: InstanceUsage(minute=1, hour=2, day=3, last_sent_at=NOW - timedelta(seconds=5)),
        b: InstanceUsage(minute=1, hour=1, day=1, last_sent_at=NOW),
    }
    assert windows.contacts == {
        (ORG, PHONE): ContactUsage(hour=2, last_sent_at=NOW - timedelta(seconds=5), last_instance_id=a),
        (ORG, "5511900000003"): ContactUsage(hour=1, last_sent_at=NOW, last_instance_id=b),
    }
    # November: the intent decided three days ago counts in the month, not in the day.
    assert windows.plans == {ORG: PlanUsage(day=4, month=5)}


async def test_a_rebuild_written_in_parts_counts_every_window(redis_client, prefix, monkeypatch):
    monkeypatch.setattr(redis_rate_store, "REBUILD_PART", 2)
    instances = [new_id() for _ in range(3)]
    sent = {i: InstanceUsage(hour=n + 1, day=n + 1, last_sent_at=NOW) for n, i in enumerate(instances)}
    store = RedisRateStore(redis_client, prefix=prefix, history=FakeSentHistory(SentWindows(NOW, sent)))

    results = [
        await store.reserve(reservation(i, target=f"551190000000{n}", per_hour=2))
        for n, i in enumerate(instances)
    ]

    assert [r.ok for r in results] == [True, False, False]  # 1, 2 and 3 sent of 2 an hour
    snapshot = await store.snapshot(ORG, PHONE, instances, NOW)
    assert [snapshot.usage(i).hour for i in instances] == [2, 2, 3]
