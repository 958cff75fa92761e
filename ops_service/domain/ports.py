"""Storage ports of the ops context. Every list reads in id (creation) order from `after_id`, except the
audit log, which reads newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from libs.seedwork.shared_kernel import ControlScope
from libs.seedwork.unit_of_work import InboxUnitOfWork
from ops_service.domain.api_key import ApiKey
from ops_service.domain.audit import AuditEntry
from ops_service.domain.control import ControlStatus, ExecutionControl, Scope
from ops_service.domain.organization import Member, Organization
from ops_service.domain.plan import Plan


class OrganizationRepository(Protocol):
    def add(self, organization: Organization) -> None: ...

    async def get(self, organization_id: str) -> Organization | None: ...


class MemberRepository(Protocol):
    def add(self, member: Member) -> None: ...

    async def get(self, organization_id: str, user_id: str) -> Member | None: ...

    async def list(self, organization_id: str, *, after_id: str | None, limit: int) -> list[Member]: ...


class ApiKeyRepository(Protocol):
    def add(self, key: ApiKey) -> None: ...

    async def get(self, organization_id: str, key_id: str) -> ApiKey | None:
        """The key, only if it belongs to this organization."""
        ...

    async def get_any(self, key_id: str) -> ApiKey | None:
        """The key whatever its organization (for the key directory, never for a client's call)."""
        ...

    async def find_by_prefix(self, prefix: str) -> ApiKey | None: ...

    async def list(self, organization_id: str, *, after_id: str | None, limit: int) -> list[ApiKey]: ...


@dataclass(frozen=True, kw_only=True)
class ControlFilter:
    scope: ControlScope | None = None
    status: ControlStatus | None = None


class ControlRepository(Protocol):
    def add(self, control: ExecutionControl) -> None: ...

    async def get(self, scope: Scope) -> ExecutionControl | None:
        """The scope's control, locked until the transaction ends (two changes of a scope take turns)."""
        ...

    async def list_paused(
        self, organization_id: str | None, *, after_id: str | None, limit: int
    ) -> list[ExecutionControl]:
        """None: every organization's (internal projection rebuilds only)."""
        ...

    async def expired(self, now: datetime, *, limit: int) -> list[ExecutionControl]:
        """Paused controls whose `paused_until` has passed, locked, skipping those another pass holds."""
        ...

    async def list(
        self, organization_id: str, *, after_id: str | None, limit: int, where: ControlFilter
    ) -> list[ExecutionControl]: ...


class PlanRepository(Protocol):
    def add(self, plan: Plan) -> None: ...

    async def get(self, organization_id: str) -> Plan | None:
        """The organization's plan, locked until the transaction ends (two changes take turns)."""
        ...

    async def list(self, organization_id: str | None, *, after_id: str | None, limit: int) -> list[Plan]:
        """None: every organization's (internal projection rebuilds only)."""
        ...


class AuditLog(Protocol):
    def add(self, entry: AuditEntry) -> None: ...

    async def list(self, organization_id: str, *, before_id: str | None, limit: int) -> list[AuditEntry]:
        """Newest first, strictly before `before_id`."""
        ...


class OpsUnitOfWork(InboxUnitOfWork, Protocol):
    @property
    def organizations(self) -> OrganizationRepository: ...

    @property
    def members(self) -> MemberRepository: ...

    @property
    def api_keys(self) -> ApiKeyRepository: ...

    @property
    def controls(self) -> ControlRepository: ...

    @property
    def plans(self) -> PlanRepository: ...

    @property
    def audit(self) -> AuditLog: ...
