"""Read use cases: every read is scoped to one organization."""

from __future__ import annotations

from collections.abc import Callable

from libs.seedwork.errors import InvalidArgument, NotFound
from libs.seedwork.ids import is_valid_id
from libs.seedwork.pagination import Page, PageRequest
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


class ListInstancesHandler:
    def __init__(self, uow: Callable[[], ReputationUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(
        self, organization_id: str, page: PageRequest, where: InstanceFilter
    ) -> Page[Instance]:
        require_organization(organization_id)
        async with self._uow() as uow:
            instances = await uow.instances.list(
                organization_id, after_id=page.after_id, limit=page.size, where=where
            )
        return Page.of(instances, page, id_of=lambda instance: instance.id)


class ListInstanceStatesHandler:
    """Every organization's instances, for other contexts rebuilding their projections at start-up.
    Internal: the gateway never exposes it to clients."""

    def __init__(self, uow: Callable[[], ReputationUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, organization_id: str, page: PageRequest) -> Page[Instance]:
        async with self._uow() as uow:
            instances = await uow.instances.list(
                organization_id or None, after_id=page.after_id, limit=page.size, where=InstanceFilter()
            )
        return Page.of(instances, page, id_of=lambda instance: instance.id)
