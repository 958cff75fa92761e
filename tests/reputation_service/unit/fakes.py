from __future__ import annotations

import copy

from libs.seedwork.shared_kernel import Provider
from libs.testing.fakes import FakeUnitOfWork
from reputation_service.domain.instance import Instance
from reputation_service.domain.ports import InstanceFilter


class FakeInstanceRepository:
    def __init__(self) -> None:
        self.rows: dict[str, Instance] = {}

    def add(self, instance: Instance) -> None:
        self.rows[instance.id] = instance

    async def get(self, organization_id: str, instance_id: str) -> Instance | None:
        found = self.rows.get(instance_id)
        return found if found is not None and found.organization_id == organization_id else None

    async def find_by_provider_ref(
        self, organization_id: str, provider: Provider, ref: str
    ) -> Instance | None:
        return next(
            (
                i
                for i in self.rows.values()
                if (i.organization_id, i.provider, i.provider_instance_ref)
                == (organization_id, provider, ref)
            ),
            None,
        )

    async def list(
        self, organization_id: str | None, *, after_id: str | None, limit: int, where: InstanceFilter
    ) -> list[Instance]:
        chosen = sorted(
            (
                i
                for i in self.rows.values()
                if (organization_id is None or i.organization_id == organization_id)
                and (after_id is None or i.id > after_id)
                and (where.provider is None or i.provider == where.provider)
                and (where.purpose is None or where.purpose in i.purposes)
                and (where.connection_state is None or i.connection_state == where.connection_state)
            ),
            key=lambda i: i.id,
        )
        return chosen[:limit]


class FakeReputationUnitOfWork(FakeUnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.instances = FakeInstanceRepository()
        self._committed_rows: dict[str, Instance] = {}

    def _begin(self) -> None:
        self.instances.rows = copy.deepcopy(self._committed_rows)

    def _keep(self) -> None:
        self._committed_rows = copy.deepcopy(self.instances.rows)

    def _discard(self) -> None:
        self.instances.rows = copy.deepcopy(self._committed_rows)
