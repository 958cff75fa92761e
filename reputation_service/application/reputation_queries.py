"""Reading reputations: one with the explanation of its last change, a filtered page of them. Every read is
scoped to one organization (another organization's instance is not found)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from libs.seedwork.errors import InvalidArgument, NotFound, Reason
from libs.seedwork.ids import is_valid_id
from libs.seedwork.organizations import require_organization
from libs.seedwork.pagination import Page, PageRequest
from reputation_service.domain.evaluation import HealthStatus
from reputation_service.domain.ports import InstanceReputation, ReputationFilter, ReputationUnitOfWork
from reputation_service.domain.warmup import WarmupPhase


@dataclass(frozen=True, kw_only=True)
class GetReputation:
    organization_id: str
    instance_id: str


class GetReputationHandler:
    """One instance's reputation and the explanation of the last evaluation that changed it."""

    def __init__(self, uow: Callable[[], ReputationUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: GetReputation) -> InstanceReputation:
        require_organization(query.organization_id)
        if not is_valid_id(query.instance_id):
            raise InvalidArgument.of("instance_id", "must be an instance id")
        async with self._uow() as uow:
            reputation = await uow.reputations.get(query.organization_id, query.instance_id)
        if reputation is None:
            raise NotFound(
                f"instance {query.instance_id} not found",
                reason=Reason.INSTANCE_NOT_FOUND,
                metadata={"instance_id": query.instance_id},
            )
        return reputation


@dataclass(frozen=True, kw_only=True)
class ListReputations:
    organization_id: str
    page: PageRequest
    where: ReputationFilter = field(default_factory=ReputationFilter)


class ListReputationsHandler:
    """A page of the organization's reputations in instance order, optionally by health and phase."""

    def __init__(self, uow: Callable[[], ReputationUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: ListReputations) -> Page[InstanceReputation]:
        require_organization(query.organization_id)
        async with self._uow() as uow:
            found = await uow.reputations.list(
                query.organization_id, after_id=query.page.after_id, limit=query.page.size, where=query.where
            )
        return Page.of(found, query.page, id_of=lambda reputation: reputation.instance_id)


class ReputationCensusHandler:
    """How many instances there are per (health, phase), every organization's: for the gauges."""

    def __init__(self, uow: Callable[[], ReputationUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self) -> dict[tuple[HealthStatus, WarmupPhase], int]:
        async with self._uow() as uow:
            return await uow.reputations.census()
