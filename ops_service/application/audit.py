"""The audit log, newest first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from libs.seedwork.organizations import require_organization
from libs.seedwork.pagination import Page, PageRequest
from ops_service.domain.audit import AuditEntry
from ops_service.domain.ports import OpsUnitOfWork


@dataclass(frozen=True, kw_only=True)
class ListAuditEntries:
    organization_id: str
    page: PageRequest


class ListAuditEntriesHandler:
    def __init__(self, uow: Callable[[], OpsUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: ListAuditEntries) -> Page[AuditEntry]:
        require_organization(query.organization_id)
        async with self._uow() as uow:
            entries = await uow.audit.list(
                query.organization_id, before_id=query.page.after_id, limit=query.page.size
            )
        return Page.of(entries, query.page, id_of=lambda entry: entry.id)
