"""Read use cases: a query dataclass and its handler each. Every client read is scoped to one organization."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from libs.seedwork.errors import InvalidArgument, NotFound, Reason
from libs.seedwork.ids import is_valid_id
from libs.seedwork.organizations import require_organization
from libs.seedwork.pagination import Page, PageRequest
from reputation_service.domain.instance import Instance
from reputation_service.domain.ports import InstanceFilter, InstanceReputation, ReputationUnitOfWork


@dataclass(frozen=True, kw_only=True)
class GetInstance:
    organization_id: str
    instance_id: str


class GetInstanceHandler:
    """One instance of the organization; NotFound also when it belongs to another one."""

    def __init__(self, uow: Callable[[], ReputationUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: GetInstance) -> Instance:
        require_organization(query.organization_id)
        if not is_valid_id(query.instance_id):
            raise InvalidArgument.of("instance_id", "must be an instance id")
        async with self._uow() as uow:
            instance = await uow.instances.get(query.organization_id, query.instance_id)
        if instance is None:
            raise NotFound(
                f"instance {query.instance_id} not found",
                reason=Reason.INSTANCE_NOT_FOUND,
                metadata={"instance_id": query.instance_id},
            )
        return instance


@dataclass(frozen=True, kw_only=True)
class ListInstances:
    organization_id: str
    page: PageRequest
    where: InstanceFilter = field(default_factory=InstanceFilter)


class ListInstancesHandler:
    """A page of the organization's instances in creation order, optionally filtered."""

    def __init__(self, uow: Callable[[], ReputationUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: ListInstances) -> Page[Instance]:
        require_organization(query.organization_id)
        async with self._uow() as uow:
            instances = await uow.instances.list(
                query.organization_id, after_id=query.page.after_id, limit=query.page.size, where=query.where
            )
        return Page.of(instances, query.page, id_of=lambda instance: instance.id)


@dataclass(frozen=True, kw_only=True)
class ListInstanceStates:
    """Empty `organization_id`: every organization's."""

    organization_id: str
    page: PageRequest


@dataclass(frozen=True)
class InstanceWithReputation:
    instance: Instance
    reputation: InstanceReputation | None  # None: registered before reputations were kept, not yet read


class ListInstanceStatesHandler:
    """Every organization's instances with their reputation, for other contexts rebuilding their
    projections at start-up. Internal: the gateway never exposes it to clients."""

    def __init__(self, uow: Callable[[], ReputationUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: ListInstanceStates) -> Page[InstanceWithReputation]:
        async with self._uow() as uow:
            instances = await uow.instances.list(
                query.organization_id or None,
                after_id=query.page.after_id,
                limit=query.page.size,
                where=InstanceFilter(),
            )
            reputations = await uow.reputations.of_instances([i.id for i in instances])
        return Page.of(
            [InstanceWithReputation(i, reputations.get(i.id)) for i in instances],
            query.page,
            id_of=lambda item: item.instance.id,
        )
