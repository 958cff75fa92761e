"""In-memory stand-ins for the ops ports, with the semantics of the real ones (rows kept only on commit)."""

from __future__ import annotations

import copy
from datetime import datetime

from libs.seedwork.api_keys import IssuedKey, digest
from libs.testing.fakes import FakeUnitOfWork
from ops_service.domain.api_key import ApiKey
from ops_service.domain.audit import AuditEntry
from ops_service.domain.control import ExecutionControl, Scope
from ops_service.domain.organization import Member, Organization
from ops_service.domain.plan import Plan
from ops_service.domain.ports import ControlFilter


def _page(rows: list, after_id: str | None, limit: int) -> list:
    return sorted((r for r in rows if after_id is None or r.id > after_id), key=lambda r: r.id)[:limit]


class FakeOrganizations:
    def __init__(self) -> None:
        self.rows: dict[str, Organization] = {}

    def add(self, organization: Organization) -> None:
        self.rows[organization.id] = organization

    async def get(self, organization_id: str) -> Organization | None:
        return self.rows.get(organization_id)


class FakeMembers:
    def __init__(self) -> None:
        self.rows: dict[str, Member] = {}

    def add(self, member: Member) -> None:
        self.rows[member.id] = member

    async def get(self, organization_id: str, user_id: str) -> Member | None:
        return next(
            (m for m in self.rows.values() if (m.organization_id, m.user_id) == (organization_id, user_id)),
            None,
        )

    async def list(self, organization_id: str, *, after_id: str | None, limit: int) -> list[Member]:
        return _page([m for m in self.rows.values() if m.organization_id == organization_id], after_id, limit)


class FakeApiKeys:
    def __init__(self) -> None:
        self.rows: dict[str, ApiKey] = {}

    def add(self, key: ApiKey) -> None:
        self.rows[key.id] = key

    async def get(self, organization_id: str, key_id: str) -> ApiKey | None:
        key = self.rows.get(key_id)
        return key if key is not None and key.organization_id == organization_id else None

    async def get_any(self, key_id: str) -> ApiKey | None:
        return self.rows.get(key_id)

    async def find_by_prefix(self, prefix: str) -> ApiKey | None:
        return next((k for k in self.rows.values() if k.prefix == prefix), None)

    async def list(self, organization_id: str, *, after_id: str | None, limit: int) -> list[ApiKey]:
        return _page([k for k in self.rows.values() if k.organization_id == organization_id], after_id, limit)


class FakeControls:
    def __init__(self) -> None:
        self.rows: dict[str, ExecutionControl] = {}

    def add(self, control: ExecutionControl) -> None:
        self.rows[control.id] = control

    async def get(self, scope: Scope) -> ExecutionControl | None:
        return next(
            (
                c
                for c in self.rows.values()
                if (c.organization_id, c.scope, c.scope_id)
                == (scope.organization_id, scope.scope, scope.scope_id)
            ),
            None,
        )

    async def list_paused(
        self, organization_id: str | None, *, after_id: str | None, limit: int
    ) -> list[ExecutionControl]:
        chosen = [
            c
            for c in self.rows.values()
            if c.paused and (organization_id is None or c.organization_id == organization_id)
        ]
        return _page(chosen, after_id, limit)

    async def expired(self, now: datetime, *, limit: int) -> list[ExecutionControl]:
        return [c for c in self.rows.values() if c.expired(now)][:limit]

    async def list(
        self, organization_id: str, *, after_id: str | None, limit: int, where: ControlFilter
    ) -> list[ExecutionControl]:
        chosen = [
            c
            for c in self.rows.values()
            if c.organization_id == organization_id
            and where.scope in (None, c.scope)
            and where.status in (None, c.status)
        ]
        return _page(chosen, after_id, limit)


class FakePlans:
    def __init__(self) -> None:
        self.rows: dict[str, Plan] = {}

    def add(self, plan: Plan) -> None:
        self.rows[plan.organization_id] = plan

    async def get(self, organization_id: str) -> Plan | None:
        return self.rows.get(organization_id)

    async def list(self, organization_id: str | None, *, after_id: str | None, limit: int) -> list[Plan]:
        chosen = [p for p in self.rows.values() if organization_id in (None, p.organization_id)]
        return _page(chosen, after_id, limit)


class FakeAuditLog:
    def __init__(self) -> None:
        self.rows: list[AuditEntry] = []

    def add(self, entry: AuditEntry) -> None:
        self.rows.append(entry)

    async def list(self, organization_id: str, *, before_id: str | None, limit: int) -> list[AuditEntry]:
        chosen = [
            e
            for e in self.rows
            if e.organization_id == organization_id and (before_id is None or e.id < before_id)
        ]
        return sorted(chosen, key=lambda e: e.id, reverse=True)[:limit]


class FakeOpsUnitOfWork(FakeUnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.organizations = FakeOrganizations()
        self.members = FakeMembers()
        self.api_keys = FakeApiKeys()
        self.controls = FakeControls()
        self.plans = FakePlans()
        self.audit = FakeAuditLog()
        self._snapshot: dict[str, object] = {}

    _REPOS = ("organizations", "members", "api_keys", "controls", "plans", "audit")

    def _begin(self) -> None:
        self._snapshot = {name: copy.deepcopy(getattr(self, name)) for name in self._REPOS}

    def _discard(self) -> None:
        for name, repo in self._snapshot.items():
            setattr(self, name, repo)

    def _keep(self) -> None:
        self._snapshot = {name: copy.deepcopy(getattr(self, name)) for name in self._REPOS}

    def __call__(self) -> FakeOpsUnitOfWork:
        return self


class FakeKeyDirectory:
    def __init__(self) -> None:
        self.entries: dict[str, ApiKey] = {}

    async def put(self, key: ApiKey) -> None:
        self.entries[key.prefix] = copy.deepcopy(key)


class PredictableKeys:
    """Issues wl_key00001_…, wl_key00002_…: tests know each secret and its prefix."""

    def __init__(self) -> None:
        self.issued: list[IssuedKey] = []

    def __call__(self) -> IssuedKey:
        prefix = f"key{len(self.issued) + 1:05d}"
        secret = f"wl_{prefix}_{'s' * 43}"
        issued = IssuedKey(secret=secret, prefix=prefix, sha256=digest(secret))
        self.issued.append(issued)
        return issued
