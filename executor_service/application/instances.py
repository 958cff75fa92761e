"""Keep the instance projection: the registry's profile of each instance, and what its provider reports
about it (connection, reach-out time-lock, capping), whether by webhook, health probe or a send's error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from executor_service.domain.instance import CappingLevel, InstanceProfile
from executor_service.domain.outcome import JobError, RestrictionKind
from executor_service.domain.ports import ExecutorUnitOfWork
from libs.seedwork.clock import Clock
from libs.seedwork.shared_kernel import ConnectionState, Provider, ProviderEngine


async def instance_for(
    uow: ExecutorUnitOfWork, *, instance_id: str, organization_id: str, provider: Provider, ref: str
) -> InstanceProfile:
    """The projected instance, or a new row known only from this fact (the registry fills it in later)."""
    found = await uow.instances.get(instance_id)
    if found is not None:
        return found
    return InstanceProfile(
        instance_id=instance_id,
        organization_id=organization_id,
        provider=provider,
        provider_instance_ref=ref,
    )


def apply_restriction(instance: InstanceProfile, error: JobError) -> bool:
    """What a RESTRICTED send error says about the instance itself (a 463 time-locks it; logged out and
    banned stop it); True when the projection changed."""
    at = error.occurred_at
    match error.restriction:
        case RestrictionKind.REACHOUT_TIMELOCK:
            return instance.apply_timelock(until=None, at=at)
        case RestrictionKind.LOGGED_OUT:
            return instance.apply_connection(ConnectionState.LOGGED_OUT, reason=error.code, at=at)
        case RestrictionKind.TEMPORARY_BAN | RestrictionKind.PERMANENT_BAN:
            return instance.apply_connection(ConnectionState.BANNED, reason=error.code, at=at)
    return False  # disconnected, unauthorized: the job fails, the instance is not held for it


# --- the registry ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProjectInstance:
    """Reputation registered or changed an instance (the whole instance after the change)."""

    instance_id: str
    organization_id: str
    provider: Provider
    provider_instance_ref: str
    provider_version: str
    provider_engine: ProviderEngine
    version: int


class ProjectInstanceHandler:
    """Stores the registry's newest version of an instance (older, reordered versions are dropped), keeping
    the provider's facts about it."""

    async def __call__(self, uow: ExecutorUnitOfWork, command: ProjectInstance) -> bool:
        instance = await instance_for(
            uow,
            instance_id=command.instance_id,
            organization_id=command.organization_id,
            provider=command.provider,
            ref=command.provider_instance_ref,
        )
        changed = instance.apply_registry(
            organization_id=command.organization_id,
            provider=command.provider,
            provider_instance_ref=command.provider_instance_ref,
            provider_version=command.provider_version,
            provider_engine=command.provider_engine,
            version=command.version,
        )
        if changed:
            uow.instances.save(instance)
        return changed


# --- the provider's facts ----------------------------------------------------------------------------


class FactKind(StrEnum):
    CONNECTION = "CONNECTION"  # CONNECTION_* events, and INSTANCE_BANNED (state BANNED)
    TIMELOCKED = "TIMELOCKED"
    TIMELOCK_LIFTED = "TIMELOCK_LIFTED"
    CAPPING = "CAPPING"


@dataclass(frozen=True, kw_only=True)
class RecordInstanceFact:
    """The provider reported something about an instance (not about one message)."""

    instance_id: str  # "" when the gateway could not resolve it: found by provider and reference
    organization_id: str
    provider: Provider
    provider_instance_ref: str
    kind: FactKind
    occurred_at: datetime
    connection_state: ConnectionState | None = None
    connection_reason: str = ""
    timelock_until: datetime | None = None
    capping: CappingLevel | None = None
    quota_used: int | None = None
    quota_total: int | None = None


class RecordInstanceFactHandler:
    """Applies a provider's fact to the instance projection (a late, older fact is dropped). When it lifts
    the instance's restriction (connected again, time-lock over), the jobs it held run at once."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def __call__(self, uow: ExecutorUnitOfWork, fact: RecordInstanceFact) -> bool:
        instance = await self._instance(uow, fact)
        if instance is None:
            return False
        was_restricted = instance.restricted
        if not self._apply(instance, fact):
            return False
        uow.instances.save(instance)
        now = self._clock.now()
        if was_restricted and not instance.restricted:
            await uow.jobs.wake_instance(instance.instance_id, now)
        return True

    @staticmethod
    async def _instance(uow: ExecutorUnitOfWork, fact: RecordInstanceFact) -> InstanceProfile | None:
        if fact.instance_id:
            return await instance_for(
                uow,
                instance_id=fact.instance_id,
                organization_id=fact.organization_id,
                provider=fact.provider,
                ref=fact.provider_instance_ref,
            )
        # Without our id the instance must be known already: a new row needs one.
        return await uow.instances.find_by_ref(fact.provider.value, fact.provider_instance_ref)

    @staticmethod
    def _apply(instance: InstanceProfile, fact: RecordInstanceFact) -> bool:
        at = fact.occurred_at
        match fact.kind:
            case FactKind.CONNECTION:
                if fact.connection_state is None:
                    return False
                return instance.apply_connection(fact.connection_state, reason=fact.connection_reason, at=at)
            case FactKind.TIMELOCKED:
                return instance.apply_timelock(until=fact.timelock_until, at=at)
            case FactKind.TIMELOCK_LIFTED:
                return instance.lift_timelock(at=at)
            case FactKind.CAPPING:
                if fact.capping is None:
                    return False
                return instance.apply_capping(
                    fact.capping, used=fact.quota_used, total=fact.quota_total, at=at
                )
        return False
