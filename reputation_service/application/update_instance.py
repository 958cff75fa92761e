from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from libs.seedwork.clock import Clock
from libs.seedwork.errors import AlreadyExists, NotFound, Reason
from reputation_service.domain.instance import Instance, InstanceChanges
from reputation_service.domain.ports import ReputationUnitOfWork


@dataclass(frozen=True, kw_only=True)
class UpdateInstance:
    organization_id: str
    instance_id: str
    changes: InstanceChanges


class UpdateInstanceHandler:
    """Changes what was given and announces it (InstanceChanged); a change to nothing announces nothing."""

    def __init__(self, uow: Callable[[], ReputationUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, command: UpdateInstance) -> Instance:
        async with self._uow() as uow:
            instance = await uow.instances.get(command.organization_id, command.instance_id)
            if instance is None:
                raise NotFound(
                    f"instance {command.instance_id} not found",
                    reason=Reason.INSTANCE_NOT_FOUND,
                    metadata={"instance_id": command.instance_id},
                )
            changed = instance.apply(command.changes, now=self._clock.now())
            if {"provider", "provider_instance_ref"} & set(changed):
                other = await uow.instances.find_by_provider_ref(
                    instance.organization_id, instance.provider, instance.provider_instance_ref
                )
                if other is not None and other.id != instance.id:
                    raise AlreadyExists(
                        f"instance {other.id} already uses that provider ref",
                        reason=Reason.PROVIDER_REF_IN_USE,
                        metadata={"instance_id": other.id},
                    )
            uow.track(instance)
            await uow.commit()
        return instance
