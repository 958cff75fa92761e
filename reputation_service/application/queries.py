"""Read use cases: every read is scoped to one organization."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from libs.seedwork.errors import InvalidArgument, NotFound
from libs.seedwork.ids import is_valid_id
from libs.seedwork.pagination import PageRequest, next_page_token
from reputation_service.domain.instance import Instance
from reputation_service.domain.ports import InstanceFilter, ReputationUnitOfWork


def require_organization(organization_id: str) -> None:
    if not organization_id.strip():
        raise InvalidArgument.of("organization_id", "must not be empty")


class GetInstanceHandler:
    def __init__(self, uow: Callable[[], ReputationUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, organization_id: str, instance_id: str) -> Instance:
        require_organization(organization_id)
        if not is_valid_id(instance_id):
            raise InvalidArgument.of("instance_id", "must be an instance id")
        async with self._uow() as uow:
            instance = await uow.instances.get(organization_id, instance_id)
        if instance is None:
            raise NotFound(f"instance {instance_id} not found")
        return instance


@dataclass(frozen=True)
class InstancePage:
    instances: list[Instance]
    next_page_token: str


class ListInstancesHandler:
    def __init__(self, uow: Callable[[], ReputationUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, organization_id: str, page: PageRequest, where: InstanceFilter) -> InstancePage:
        require_organization(organization_id)
        async with self._uow() as uow:
            instances = await uow.instances.list(
                organization_id, after_id=page.after_id, limit=page.size, where=where
            )
        last = instances[-1].id if instances else None
        return InstancePage(instances, next_page_token(last, full_page=len(instances) == page.size))


class ListInstanceStatesHandler:
    """Every organization's instances, for other contexts rebuilding their projections at start-up.
    Internal: the gateway never exposes it to clients."""

    def __init__(self, uow: Callable[[], ReputationUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, organization_id: str, page: PageRequest) -> InstancePage:
        async with self._uow() as uow:
            instances = await uow.instances.list(
                organization_id or None, after_id=page.after_id, limit=page.size, where=InstanceFilter()
            )
        last = instances[-1].id if instances else None
        return InstancePage(instances, next_page_token(last, full_page=len(instances) == page.size))
