from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from libs.db.unit_of_work import SqlAlchemyUnitOfWork
from ops_service.infrastructure.repositories import (
    SqlAlchemyApiKeyRepository,
    SqlAlchemyAuditLog,
    SqlAlchemyControlRepository,
    SqlAlchemyMemberRepository,
    SqlAlchemyOrganizationRepository,
    SqlAlchemyPlanRepository,
)


class SqlAlchemyOpsUnitOfWork(SqlAlchemyUnitOfWork):
    """The ops context's transaction: organizations, members, keys, controls, plans and the audit log."""

    organizations: SqlAlchemyOrganizationRepository
    members: SqlAlchemyMemberRepository
    api_keys: SqlAlchemyApiKeyRepository
    controls: SqlAlchemyControlRepository
    plans: SqlAlchemyPlanRepository
    audit: SqlAlchemyAuditLog

    def _open(self, session: AsyncSession) -> None:
        self.organizations = SqlAlchemyOrganizationRepository(session)
        self.members = SqlAlchemyMemberRepository(session)
        self.api_keys = SqlAlchemyApiKeyRepository(session)
        self.controls = SqlAlchemyControlRepository(session)
        self.plans = SqlAlchemyPlanRepository(session)
        self.audit = SqlAlchemyAuditLog(session)

    async def _flush(self) -> None:
        await self.organizations.flush()
        await self.members.flush()
        await self.api_keys.flush()
        await self.controls.flush()
        await self.plans.flush()
        await self.audit.flush()
