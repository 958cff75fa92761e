from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from libs.seedwork.clock import Clock
from libs.seedwork.errors import AlreadyExists, Reason
from libs.seedwork.shared_kernel import ConnectionState, Provider, ProviderEngine, Purpose
from reputation_service.application.reputation_updates import ReputationUpdater
from reputation_service.domain.instance import Instance
from reputation_service.domain.plan_allowance import WithinInstanceCap
from reputation_service.domain.ports import ReputationUnitOfWork


@dataclass(frozen=True, kw_only=True)
class RegisterInstance:
    organization_id: str
    display_name: str
    provider: Provider | None
    provider_instance_ref: str
    phone: str
    purposes: frozenset[Purpose]
    connection_state: ConnectionState | None = None
    provider_version: str = ""  # "" and UNSPECIFIED: unknown, the provider's most cautious capabilities
    provider_engine: ProviderEngine = ProviderEngine.UNSPECIFIED


class RegisterInstanceHandler:
    """Adds a number to an organization's registry and announces it (InstanceRegistered), with its first
    reputation (ReputationEvaluated: its organization's initial phase) in the same transaction. Refused
    (FailedPrecondition) once the organization has as many instances as its plan allows; the count and
    the insert happen under the organization's allowance lock, so concurrent registrations take turns."""

    def __init__(
        self,
        uow: Callable[[], ReputationUnitOfWork],
        clock: Clock,
        reputation: ReputationUpdater | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._reputation = reputation

    async def __call__(self, command: RegisterInstance) -> Instance:
        instance = Instance.register(
            organization_id=command.organization_id,
            display_name=command.display_name,
            provider=command.provider,
            provider_instance_ref=command.provider_instance_ref,
            phone=command.phone,
            purposes=command.purposes,
            connection_state=command.connection_state,
            provider_version=command.provider_version,
            provider_engine=command.provider_engine,
            now=self._clock.now(),
        )
        async with self._uow() as uow:
            existing = await uow.instances.find_by_provider_ref(
                instance.organization_id, instance.provider, instance.provider_instance_ref
            )
            if existing is not None:
                raise AlreadyExists(
                    f"instance {existing.id} already uses {instance.provider.value} ref "
                    f"{instance.provider_instance_ref!r}",
                    reason=Reason.PROVIDER_REF_IN_USE,
                    metadata={"instance_id": existing.id},
                )
            allowance = await uow.allowances.lock(instance.organization_id)
            if allowance.is_limited:
                WithinInstanceCap.check(allowance, await uow.instances.count(instance.organization_id))
            uow.instances.add(instance)
            uow.track(instance)
            if self._reputation is not None:
                await uow.reputations.add(self._reputation.registered(uow, instance))
            await uow.commit()
        return instance
