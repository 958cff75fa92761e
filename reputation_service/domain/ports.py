"""Storage ports of the reputation context: what its use cases need to keep and find instances."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from libs.seedwork.shared_kernel import ConnectionState, Provider, Purpose
from libs.seedwork.unit_of_work import UnitOfWork
from reputation_service.domain.instance import Instance


@dataclass(frozen=True, kw_only=True)
class InstanceFilter:
    provider: Provider | None = None
    purpose: Purpose | None = None
    connection_state: ConnectionState | None = None


class InstanceRepository(Protocol):
    def add(self, instance: Instance) -> None:
        """Insert at commit (the unit of work flushes it)."""
        ...

    async def get(self, organization_id: str, instance_id: str) -> Instance | None:
        """The instance, only if it belongs to this organization."""
        ...

    async def find_by_provider_ref(
        self, organization_id: str, provider: Provider, provider_instance_ref: str
    ) -> Instance | None:
        """The organization's instance behind this provider reference, if any (references are unique)."""
        ...

    async def list(
        self, organization_id: str | None, *, after_id: str | None, limit: int, where: InstanceFilter
    ) -> list[Instance]:
        """Instances in id (creation) order, strictly after `after_id`; None: of every organization
        (only for internal projection rebuilds, never for a client's call)."""
        ...


class ReputationUnitOfWork(UnitOfWork, Protocol):
    """One transaction over the registry; its events reach the outbox on commit."""

    @property
    def instances(self) -> InstanceRepository: ...
