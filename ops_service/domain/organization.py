"""Organizations (the tenants) and their members."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from libs.seedwork.access import Principal, Role
from libs.seedwork.aggregate import AggregateRoot
from libs.seedwork.errors import InvalidArgument, PermissionDenied, Reason, Violations, with_article
from libs.seedwork.ids import new_id
from ops_service.domain.events import MemberAdded, OrganizationCreated


@dataclass(frozen=True, kw_only=True)
class Member:
    id: str
    organization_id: str
    user_id: str
    role: Role
    created_at: datetime


@dataclass(kw_only=True, eq=False)
class Organization(AggregateRoot):
    id: str
    name: str
    created_at: datetime

    @classmethod
    def create(
        cls, *, name: str, owner_user_id: str, actor: str, now: datetime
    ) -> tuple[Organization, Member]:
        """A new organization and its first OWNER."""
        violations = Violations()
        violations.check(bool(name.strip()), "name", "must not be blank")
        violations.check(bool(owner_user_id.strip()), "owner_user_id", "must not be blank")
        violations.raise_if_any()
        organization = cls(id=new_id(), name=name.strip(), created_at=now)
        organization.record(
            OrganizationCreated(
                event_id=new_id(),
                organization_id=organization.id,
                aggregate_id=organization.id,
                occurred_at=now,
                actor=actor,
                organization=organization,
            )
        )
        return organization, organization._join(owner_user_id.strip(), Role.OWNER, actor, now)

    def add_member(
        self, *, user_id: str, role: Role, granted_by: Principal, actor: str, now: datetime
    ) -> Member:
        """A caller grants at most its own role."""
        if not user_id.strip():
            raise InvalidArgument.of("user_id", "must not be blank")
        if not granted_by.may_grant(role):
            raise PermissionDenied(
                f"{with_article(_role_of(granted_by))} cannot grant the {role.name} role",
                reason=Reason.ROLE_ABOVE_CALLER,
                metadata={"role": role.name},
            )
        return self._join(user_id.strip(), role, actor, now)

    def _join(self, user_id: str, role: Role, actor: str, now: datetime) -> Member:
        member = Member(id=new_id(), organization_id=self.id, user_id=user_id, role=role, created_at=now)
        self.record(
            MemberAdded(
                event_id=new_id(),
                organization_id=self.id,
                aggregate_id=self.id,
                occurred_at=now,
                actor=actor,
                member=member,
            )
        )
        return member


def _role_of(principal: Principal) -> str:
    return "service" if principal.role is None else principal.role.name
