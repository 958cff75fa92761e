"""InstanceProfile: what the Executor knows of one sending instance, kept from two sources.

- The registry (Reputation's InstanceRegistered/InstanceChanged): organization, provider, provider ref,
  the provider's version and engine. Versioned: an older `version` is dropped.
- The provider (provider events from the gateway's webhooks or the Executor's own health probes):
  connection state, reach-out time-lock, capping. Each kind of fact keeps the time it happened, so a late,
  reordered fact never overwrites a newer one.

Facts decide the restriction hold: a job of a time-locked, logged-out or banned instance is not sent (no
provider call, the attempt is given back) until the fact lifts, and looks again at most every re-check.
A row may exist before the registry's event (version 0): a send error or a provider event came first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from executor_service.domain.events import ProviderHealthReported
from libs.seedwork.aggregate import AggregateRoot
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import ConnectionState, Provider, ProviderEngine

# Connection states in which sending cannot work until a person acts (pair again, appeal a ban).
BLOCKING_STATES = frozenset({ConnectionState.LOGGED_OUT, ConnectionState.BANNED})


class CappingLevel(StrEnum):
    """WhatsApp's messaging cap of a number (WAHA GOWS capping), as the probes report it."""

    NONE = "NONE"
    FIRST_WARNING = "FIRST_WARNING"
    SECOND_WARNING = "SECOND_WARNING"
    CAPPED = "CAPPED"


class HoldReason(StrEnum):
    REACHOUT_TIMELOCK = "reachout_timelock"
    LOGGED_OUT = "logged_out"
    BANNED = "banned"


@dataclass(frozen=True, slots=True)
class InstanceHold:
    """The instance cannot send now; look again at `until` (None: no known end)."""

    reason: HoldReason
    until: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceHealth:
    """One health probe's answer (None: the provider does not tell)."""

    connection: ConnectionState | None = None
    connection_reason: str = ""
    timelocked: bool | None = None
    timelock_until: datetime | None = None
    capping: CappingLevel | None = None
    quota_used: int | None = None
    quota_total: int | None = None


class HealthChange(StrEnum):
    """What a probe found different from what was last reported (the provider event it becomes)."""

    CONNECTION = "CONNECTION"
    TIMELOCKED = "TIMELOCKED"
    TIMELOCK_LIFTED = "TIMELOCK_LIFTED"
    CAPPING = "CAPPING"


@dataclass(kw_only=True, eq=False)
class InstanceProfile(AggregateRoot):
    instance_id: str
    organization_id: str
    provider: Provider
    provider_instance_ref: str
    provider_version: str = ""
    provider_engine: ProviderEngine = ProviderEngine.UNSPECIFIED
    version: int = 0  # the registry's version; 0 = not heard from the registry yet
    connection: ConnectionState | None = None
    connection_reason: str = ""
    connection_at: datetime | None = None
    timelocked: bool = False
    timelock_until: datetime | None = None  # None while time-locked: the provider did not say
    timelock_at: datetime | None = None
    capping: CappingLevel | None = None
    quota_used: int | None = None
    quota_total: int | None = None
    capping_at: datetime | None = None

    # --- the registry ---------------------------------------------------------------------------------

    def apply_registry(
        self,
        *,
        organization_id: str,
        provider: Provider,
        provider_instance_ref: str,
        provider_version: str,
        provider_engine: ProviderEngine,
        version: int,
    ) -> bool:
        """The registry's view of the instance, unless this one is older than the one kept."""
        if version <= self.version:
            return False
        self.organization_id = organization_id
        self.provider = provider
        self.provider_instance_ref = provider_instance_ref
        self.provider_version = provider_version
        self.provider_engine = provider_engine
        self.version = version
        return True

    # --- provider facts -------------------------------------------------------------------------------

    def apply_connection(self, state: ConnectionState, *, reason: str, at: datetime) -> bool:
        if _older(at, self.connection_at):
            return False
        changed = (state, reason) != (self.connection, self.connection_reason)
        self.connection, self.connection_reason, self.connection_at = state, reason, at
        return changed

    def apply_timelock(self, *, until: datetime | None, at: datetime) -> bool:
        """WhatsApp's reach-out time-lock (463) is on, until `until` when the provider says."""
        if _older(at, self.timelock_at):
            return False
        changed = not self.timelocked or until != self.timelock_until
        self.timelocked, self.timelock_until, self.timelock_at = True, until, at
        return changed

    def lift_timelock(self, *, at: datetime) -> bool:
        if _older(at, self.timelock_at):
            return False
        changed = self.timelocked
        self.timelocked, self.timelock_until, self.timelock_at = False, None, at
        return changed

    def apply_capping(
        self, level: CappingLevel, *, used: int | None, total: int | None, at: datetime
    ) -> bool:
        if _older(at, self.capping_at):
            return False
        changed = (level, used, total) != (self.capping, self.quota_used, self.quota_total)
        self.capping, self.quota_used, self.quota_total, self.capping_at = level, used, total, at
        return changed

    # --- what the facts mean for sending --------------------------------------------------------------

    @property
    def restricted(self) -> bool:
        """Whether a fact stops sending (whatever its end): lifting it wakes the jobs it held."""
        return self.timelocked or self.connection in BLOCKING_STATES

    def hold(self, now: datetime, *, assumed_timelock: timedelta) -> InstanceHold | None:
        """Why no job of this instance may be sent now, if anything. A time-lock whose end nobody reported
        is assumed over `assumed_timelock` after it was reported (a further 463 sets it again)."""
        if self.connection in BLOCKING_STATES:
            reason = HoldReason.BANNED if self.connection is ConnectionState.BANNED else HoldReason.LOGGED_OUT
            return InstanceHold(reason, None)
        if self.timelocked:
            ends = self.timelock_until
            if ends is None and self.timelock_at is not None:
                ends = self.timelock_at + assumed_timelock
            if ends is None or ends > now:
                return InstanceHold(HoldReason.REACHOUT_TIMELOCK, ends)
        return None

    # --- health probes --------------------------------------------------------------------------------

    def report_health(self, health: InstanceHealth, *, now: datetime) -> list[HealthChange]:
        """Apply a probe's answer and record a ProviderHealthReported for each fact that changed since
        the last report (webhook or probe); a probe that finds nothing new records nothing."""
        changes: list[HealthChange] = []
        if health.connection is not None and self.apply_connection(
            health.connection, reason=health.connection_reason, at=now
        ):
            changes.append(HealthChange.CONNECTION)
        if health.timelocked is True and self.apply_timelock(until=health.timelock_until, at=now):
            changes.append(HealthChange.TIMELOCKED)
        if health.timelocked is False and self.lift_timelock(at=now):
            changes.append(HealthChange.TIMELOCK_LIFTED)
        if health.capping is not None and self.apply_capping(
            health.capping, used=health.quota_used, total=health.quota_total, at=now
        ):
            changes.append(HealthChange.CAPPING)
        for change in changes:
            self.record(
                ProviderHealthReported(
                    event_id=new_id(),
                    organization_id=self.organization_id,
                    aggregate_id=self.instance_id,
                    occurred_at=now,
                    instance_id=self.instance_id,
                    provider=self.provider,
                    provider_instance_ref=self.provider_instance_ref,
                    change=change.value,
                    connection_state=self.connection.value if self.connection else "",
                    connection_reason=self.connection_reason,
                    timelock_until=self.timelock_until,
                    capping=self.capping.value if self.capping else "",
                    quota_used=self.quota_used,
                    quota_total=self.quota_total,
                )
            )
        return changes


def _older(at: datetime, kept: datetime | None) -> bool:
    return kept is not None and at < kept
