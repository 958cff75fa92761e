"""One table of rate scenarios, run against the unit tests' FakeRateStore and against RedisRateStore on a
real Redis (integration): the fake cannot drift from the Lua scripts without a scenario failing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from gate_service.application.ports import RateStore
from gate_service.domain.decision import DecisionReason
from gate_service.domain.policies import RateCaps
from gate_service.domain.rates import Reservation
from gate_service.infrastructure.redis_rate_store import RedisRateStore
from libs.seedwork.ids import new_id
from tests.gate_service.unit.fakes import FakeRateStore

T0 = datetime(2026, 11, 29, 18, 30, 15, 250_000, tzinfo=UTC)  # whole milliseconds, as Redis keeps them
NEXT_MINUTE = datetime(2026, 11, 29, 18, 31, tzinfo=UTC)
NEXT_HOUR = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)
NEXT_DAY = datetime(2026, 11, 30, tzinfo=UTC)
NEXT_MONTH = datetime(2026, 12, 1, tzinfo=UTC)
ORG = "org-rates"


@dataclass(frozen=True)
class Terms:
    """What every reservation of a scenario must respect."""

    per_minute: int = 0
    per_hour: int = 0
    per_day: int = 0
    min_interval: timedelta = timedelta(0)
    contact_min_gap: timedelta = timedelta(0)
    contact_per_hour: int = 0
    plan_daily_cap: int = 0
    plan_monthly_cap: int = 0


@dataclass(frozen=True)
class Step:
    """Reserve (or, with release=True, give back the step `release_of`), and what must come of it."""

    at: timedelta = timedelta(0)
    instance: str = "i-1"
    target: str = "5511900000001"
    refused: DecisionReason | None = None
    retry_at: datetime | None = None
    release_of: int | None = None


@dataclass(frozen=True)
class Scenario:
    terms: Terms
    steps: list[Step] = field(default_factory=list)
    raced: int = 0  # then this many reservations at once on one more instance of cap 1: exactly one wins


SECOND = timedelta(seconds=1)
SCENARIOS = {
    "minute cap": Scenario(
        Terms(per_minute=2),
        [
            Step(),
            Step(target="5511900000002"),
            Step(target="5511900000003", refused=DecisionReason.RATE_LIMIT, retry_at=NEXT_MINUTE),
        ],
    ),
    "window reset": Scenario(
        Terms(per_minute=1),
        [
            Step(),
            Step(at=10 * SECOND, refused=DecisionReason.RATE_LIMIT, retry_at=NEXT_MINUTE),
            Step(at=NEXT_MINUTE - T0),
        ],
    ),
    "hourly cap": Scenario(
        Terms(per_hour=2),
        [
            Step(),
            Step(at=90 * SECOND),
            Step(at=200 * SECOND, refused=DecisionReason.RATE_LIMIT, retry_at=NEXT_HOUR),
            Step(at=NEXT_HOUR - T0),
        ],
    ),
    "daily cap": Scenario(
        Terms(per_day=1),
        [Step(), Step(at=2 * 3600 * SECOND, refused=DecisionReason.RATE_LIMIT, retry_at=NEXT_DAY)],
    ),
    "caps are per instance": Scenario(Terms(per_minute=1), [Step(), Step(instance="i-2")]),
    "instance minimum interval": Scenario(
        Terms(min_interval=5 * SECOND),
        [
            Step(),
            Step(at=2 * SECOND, refused=DecisionReason.MIN_INTERVAL, retry_at=T0 + 5 * SECOND),
            Step(at=5 * SECOND),
        ],
    ),
    "pair rate": Scenario(
        Terms(contact_min_gap=6 * SECOND),
        [
            Step(),
            Step(
                at=SECOND,
                instance="i-2",
                refused=DecisionReason.CONTACT_MIN_INTERVAL,
                retry_at=T0 + 6 * SECOND,
            ),
            Step(at=SECOND, instance="i-2", target="5511900000002"),  # another contact
            Step(at=6 * SECOND, instance="i-2"),
        ],
    ),
    "contact hourly cap": Scenario(
        Terms(contact_per_hour=2),
        [
            Step(),
            Step(instance="i-2"),
            Step(instance="i-3", refused=DecisionReason.CONTACT_RATE_LIMIT, retry_at=NEXT_HOUR),
        ],
    ),
    "plan daily cap": Scenario(
        Terms(plan_daily_cap=2),
        [
            Step(),
            Step(instance="i-2", target="5511900000002"),
            Step(
                instance="i-3", target="5511900000003", refused=DecisionReason.PLAN_LIMIT, retry_at=NEXT_DAY
            ),
        ],
    ),
    "plan monthly cap": Scenario(
        Terms(plan_monthly_cap=1),
        [Step(), Step(at=86400 * SECOND, refused=DecisionReason.PLAN_LIMIT, retry_at=NEXT_MONTH)],
    ),
    "a released slot is free again": Scenario(
        Terms(per_minute=1),
        [
            Step(),
            Step(target="5511900000002", refused=DecisionReason.RATE_LIMIT, retry_at=NEXT_MINUTE),
            Step(release_of=0),
            Step(target="5511900000002"),
        ],
    ),
    "the last slot raced": Scenario(Terms(per_minute=1), raced=2),
    "the last slot raced by many": Scenario(Terms(per_minute=1), raced=10),
}


@pytest.fixture(params=["fake", pytest.param("redis", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest) -> RateStore:
    if request.param == "fake":
        return FakeRateStore()
    redis_client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_prefix")
    return RedisRateStore(redis_client, prefix=f"{prefix}scenarios:{new_id()[-8:]}:")


def reservation(terms: Terms, *, instance: str, target: str, now: datetime) -> Reservation:
    return Reservation(
        organization_id=ORG,
        target=target,
        instance_id=instance,
        now=now,
        caps=RateCaps(
            per_minute=terms.per_minute,
            per_hour=terms.per_hour,
            per_day=terms.per_day,
            min_interval=terms.min_interval,
        ),
        contact_min_gap=terms.contact_min_gap,
        contact_per_hour=terms.contact_per_hour,
        plan_daily_cap=terms.plan_daily_cap,
        plan_monthly_cap=terms.plan_monthly_cap,
    )


@pytest.mark.parametrize("name", SCENARIOS)
async def test_rate_scenario(store: RateStore, name: str) -> None:
    scenario = SCENARIOS[name]
    taken: list[Reservation] = []
    for n, step in enumerate(scenario.steps):
        if step.release_of is not None:
            await store.release(taken[step.release_of])
            taken.append(taken[step.release_of])
            continue
        wanted = reservation(scenario.terms, instance=step.instance, target=step.target, now=T0 + step.at)
        result = await store.reserve(wanted)
        assert (result.ok, result.reason, result.retry_at) == (
            step.refused is None,
            step.refused,
            step.retry_at,
        ), f"step {n}"
        taken.append(wanted)
    if scenario.raced:
        results = await asyncio.gather(
            *(
                store.reserve(
                    reservation(scenario.terms, instance="i-raced", target=f"55119000009{k:02d}", now=T0)
                )
                for k in range(scenario.raced)
            )
        )
        assert sum(r.ok for r in results) == 1
        assert {(r.reason, r.retry_at) for r in results if not r.ok} == {
            (DecisionReason.RATE_LIMIT, NEXT_MINUTE)
        }


async def test_the_snapshot_shows_usage_and_the_sticky_sender_even_off_the_shortlist(
    store: RateStore,
) -> None:
    terms = Terms(per_minute=5)
    await store.reserve(reservation(terms, instance="i-1", target="5511900000001", now=T0))
    await store.reserve(reservation(terms, instance="i-2", target="5511900000002", now=T0 + SECOND))
    snapshot = await store.snapshot(ORG, "5511900000001", ["i-2"], T0 + 2 * SECOND)
    assert snapshot.sticky_instance_id == "i-1"
    assert set(snapshot.instances) == {"i-1", "i-2"}
    assert snapshot.usage("i-1").minute == 1 and snapshot.usage("i-1").last_sent_at == T0
    assert (snapshot.contact_hour, snapshot.contact_last_sent_at) == (1, T0)
    assert (snapshot.org_day, snapshot.org_month) == (2, 2)
    later = await store.snapshot(ORG, "5511900000001", ["i-1"], NEXT_MINUTE)
    assert later.usage("i-1").minute == 0 and later.usage("i-1").hour == 1
