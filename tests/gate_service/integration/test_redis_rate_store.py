"""What is Redis's own in the rate store: batches in one script call, any characters in keys, scripts
loaded again, every key expiring. The rate rules themselves: tests/gate_service/test_rate_scenarios.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from gate_service.domain.decision import DecisionReason
from gate_service.domain.policies import RateCaps
from gate_service.domain.rates import Reservation, next_minute
from gate_service.infrastructure.redis_rate_store import RedisRateStore
from libs.seedwork.ids import new_id

NOW = datetime(2026, 11, 29, 18, 30, 15, tzinfo=UTC)


@pytest.fixture
def store(redis_client, redis_prefix) -> RedisRateStore:
    return RedisRateStore(redis_client, prefix=f"{redis_prefix}rates:{new_id()[-8:]}:")


def reservation(organization: str, target: str, instance: str, per_minute: int = 3) -> Reservation:
    return Reservation(
        organization_id=organization,
        target=target,
        instance_id=instance,
        now=NOW,
        caps=RateCaps(per_minute=per_minute, per_hour=0, per_day=0, min_interval=timedelta(0)),
        contact_min_gap=timedelta(0),
        contact_per_hour=0,
        plan_daily_cap=0,
        plan_monthly_cap=0,
    )


async def test_concurrent_reservations_in_one_batch_take_exactly_the_free_slots(store):
    instance = new_id()
    results = await asyncio.gather(
        *(store.reserve(reservation("org-1", f"5511900000{n:03d}", instance)) for n in range(10))
    )
    assert sum(r.ok for r in results) == 3
    refused = [r for r in results if not r.ok]
    assert {(r.reason, r.retry_at) for r in refused} == {(DecisionReason.RATE_LIMIT, next_minute(NOW))}
    snapshot = await store.snapshot("org-1", "5511900000000", [instance], NOW)
    assert snapshot.usage(instance).minute == 3 and snapshot.org_day == 3
    assert snapshot.usage(instance).last_sent_at == NOW.replace(microsecond=0)


async def test_organizations_with_any_characters_stay_apart(store):
    instance = new_id()
    odd = 'org "quoted" | with ; separators , and ünïcode'
    assert (await store.reserve(reservation(odd, "5511900000004", instance))).ok
    assert (await store.snapshot(odd, "5511900000004", [instance], NOW)).org_day == 1
    assert (await store.snapshot("org", "5511900000004", [instance], NOW)).org_day == 0


async def test_scripts_are_loaded_again_after_redis_forgets_them(store):
    instance = new_id()
    assert (await store.reserve(reservation("org-4", "5511900000005", instance))).ok
    # As after a Redis restart; not SCRIPT FLUSH, which would hit every other client of a shared server.
    store._shas = dict.fromkeys(store._shas, "0" * 40)
    assert (await store.reserve(reservation("org-4", "5511900000006", instance))).ok
    assert (await store.snapshot("org-4", "5511900000006", [instance], NOW)).usage(instance).minute == 2


async def test_every_key_a_reservation_writes_expires_also_after_a_second_send(store, redis_client):
    instance = new_id()
    for target in ("5511900000010", "5511900000011"):  # the second send finds the window counters there
        assert (await store.reserve(reservation("org-ttl", target, instance, per_minute=10))).ok

    marker = f"{store._prefix}windows".encode()
    keys = [key async for key in redis_client.scan_iter(match=f"{store._prefix}*", count=1000)]
    ttls = {key: await redis_client.ttl(key) for key in keys if key != marker}
    # Window counters (organization day and month, each contact's hour, the instance's minute, hour and
    # day), three last sends, two sticky senders: none of them left to live forever. Only the marker that
    # the windows are whole does (ADR 0013): one key per store.
    assert len(ttls) == 7 + 3 + 2
    assert all(ttl > 0 for ttl in ttls.values()), ttls
    assert await redis_client.ttl(marker) == -1
