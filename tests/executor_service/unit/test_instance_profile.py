"""InstanceProfile: the registry's versions, the provider's facts in time order, and the holds they make."""

from __future__ import annotations

from datetime import timedelta

from executor_service.domain.events import ProviderHealthReported
from executor_service.domain.instance import (
    CappingLevel,
    HealthChange,
    HoldReason,
    InstanceHealth,
    InstanceHold,
    InstanceProfile,
)
from libs.seedwork.shared_kernel import ConnectionState, Provider, ProviderEngine
from tests.executor_service.unit.builders import ORG, T0

ASSUMED = timedelta(hours=1)


def instance(**overrides: object) -> InstanceProfile:
    fields: dict[str, object] = dict(
        instance_id="inst-1", organization_id=ORG, provider=Provider.WAHA, provider_instance_ref="sales-1"
    )
    fields.update(overrides)
    return InstanceProfile(**fields)  # type: ignore[arg-type]


def registry(profile: InstanceProfile, version: int, engine: ProviderEngine = ProviderEngine.GOWS) -> bool:
    return profile.apply_registry(
        organization_id=ORG,
        provider=Provider.WAHA,
        provider_instance_ref="sales-1",
        provider_version="2026.4.3",
        provider_engine=engine,
        version=version,
    )


def test_an_older_registry_version_is_dropped():
    profile = instance()
    assert registry(profile, 2, ProviderEngine.GOWS)
    assert not registry(profile, 1, ProviderEngine.WEBJS)
    assert not registry(profile, 2, ProviderEngine.WEBJS)
    assert profile.provider_engine is ProviderEngine.GOWS and profile.version == 2


def test_the_registry_keeps_the_facts_already_known():
    profile = instance()
    profile.apply_timelock(until=None, at=T0)
    registry(profile, 1)
    assert profile.timelocked


def test_a_late_older_fact_never_overwrites_a_newer_one():
    profile = instance()
    assert profile.apply_connection(ConnectionState.LOGGED_OUT, reason="401", at=T0)
    assert not profile.apply_connection(ConnectionState.CONNECTED, reason="", at=T0 - timedelta(seconds=1))
    assert profile.connection is ConnectionState.LOGGED_OUT
    profile.lift_timelock(at=T0)
    assert not profile.apply_timelock(until=None, at=T0 - timedelta(seconds=1))
    assert not profile.timelocked


def test_a_time_lock_holds_until_its_reported_end():
    profile = instance()
    profile.apply_timelock(until=T0 + timedelta(hours=5), at=T0)
    assert profile.hold(T0, assumed_timelock=ASSUMED) == InstanceHold(
        HoldReason.REACHOUT_TIMELOCK, T0 + timedelta(hours=5)
    )
    assert profile.hold(T0 + timedelta(hours=5), assumed_timelock=ASSUMED) is None


def test_a_time_lock_without_an_end_is_assumed_over_after_a_while():
    profile = instance()
    profile.apply_timelock(until=None, at=T0)
    assert profile.hold(T0, assumed_timelock=ASSUMED) == InstanceHold(
        HoldReason.REACHOUT_TIMELOCK, T0 + ASSUMED
    )
    assert profile.hold(T0 + ASSUMED, assumed_timelock=ASSUMED) is None


def test_a_lifted_time_lock_holds_nothing():
    profile = instance()
    profile.apply_timelock(until=None, at=T0)
    assert profile.lift_timelock(at=T0 + timedelta(minutes=1))
    assert profile.hold(T0 + timedelta(minutes=1), assumed_timelock=ASSUMED) is None
    assert not profile.restricted


def test_logged_out_and_banned_hold_until_connected_again():
    profile = instance()
    profile.apply_connection(ConnectionState.LOGGED_OUT, reason="401", at=T0)
    assert profile.hold(T0 + timedelta(days=3), assumed_timelock=ASSUMED) == InstanceHold(
        HoldReason.LOGGED_OUT, None
    )
    profile.apply_connection(ConnectionState.BANNED, reason="406", at=T0 + timedelta(seconds=1))
    assert profile.hold(T0, assumed_timelock=ASSUMED) == InstanceHold(HoldReason.BANNED, None)
    profile.apply_connection(ConnectionState.CONNECTED, reason="", at=T0 + timedelta(seconds=2))
    assert profile.hold(T0, assumed_timelock=ASSUMED) is None


def test_a_disconnection_alone_holds_nothing():
    profile = instance()
    profile.apply_connection(ConnectionState.DISCONNECTED, reason="KeepAliveTimeout", at=T0)
    assert profile.hold(T0, assumed_timelock=ASSUMED) is None


def test_a_probe_reports_only_what_changed_since_the_last_report():
    profile = instance()
    profile.apply_connection(ConnectionState.CONNECTED, reason="", at=T0)
    health = InstanceHealth(
        connection=ConnectionState.CONNECTED,
        timelocked=True,
        timelock_until=T0 + timedelta(hours=2),
        capping=CappingLevel.FIRST_WARNING,
        quota_used=40,
        quota_total=50,
    )
    now = T0 + timedelta(minutes=1)
    assert profile.report_health(health, now=now) == [HealthChange.TIMELOCKED, HealthChange.CAPPING]
    events = profile.pull_events()
    assert [e.change for e in events if isinstance(e, ProviderHealthReported)] == ["TIMELOCKED", "CAPPING"]
    assert all(e.aggregate_id == "inst-1" and e.organization_id == ORG for e in events)
    assert profile.report_health(health, now=now + timedelta(minutes=1)) == []  # the same answer again
    assert profile.pull_events() == []
    lifted = InstanceHealth(connection=ConnectionState.LOGGED_OUT, connection_reason="401", timelocked=False)
    assert profile.report_health(lifted, now=now + timedelta(minutes=2)) == [
        HealthChange.CONNECTION,
        HealthChange.TIMELOCK_LIFTED,
    ]


def test_a_probe_that_cannot_tell_leaves_the_facts_alone():
    profile = instance()
    profile.apply_timelock(until=None, at=T0)
    assert profile.report_health(InstanceHealth(), now=T0 + timedelta(minutes=1)) == []
    assert profile.timelocked
