"""Organizations and their members."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from libs.seedwork.access import Principal, Role
from libs.seedwork.clock import Clock
from libs.seedwork.errors import AlreadyExists, NotFound, Reason
from libs.seedwork.organizations import require_organization
from libs.seedwork.pagination import Page, PageRequest
from ops_service.domain.audit import AuditEntry
from ops_service.domain.organization import Member, Organization
from ops_service.domain.ports import OpsUnitOfWork


@dataclass(frozen=True, kw_only=True)
class CreateOrganization:
    name: str
    owner_user_id: str
    principal: Principal


class CreateOrganizationHandler:
    """A new organization with its first OWNER (OrganizationCreated, MemberAdded)."""

    def __init__(self, uow: Callable[[], OpsUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, command: CreateOrganization) -> Organization:
        now = self._clock.now()
        actor = command.principal.actor
        organization, owner = Organization.create(
            name=command.name, owner_user_id=command.owner_user_id, actor=actor, now=now
        )
        async with self._uow() as uow:
            uow.organizations.add(organization)
            uow.members.add(owner)
            uow.track(organization)
            uow.audit.add(
                AuditEntry.record(
                    organization_id=organization.id,
                    actor=actor,
                    action="organization.created",
                    target=f"organization/{organization.id}",
                    summary=f"organization {organization.name!r} created, owner {owner.user_id!r}",
                    now=now,
                )
            )
            await uow.commit()
        return organization


@dataclass(frozen=True, kw_only=True)
class GetOrganization:
    organization_id: str


class GetOrganizationHandler:
    def __init__(self, uow: Callable[[], OpsUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: GetOrganization) -> Organization:
        return await existing_organization(self._uow, query.organization_id)


async def existing_organization(
    uow_factory: Callable[[], OpsUnitOfWork], organization_id: str
) -> Organization:
    require_organization(organization_id)
    async with uow_factory() as uow:
        organization = await uow.organizations.get(organization_id)
    if organization is None:
        raise NotFound(
            f"organization {organization_id} not found",
            reason=Reason.ORGANIZATION_NOT_FOUND,
            metadata={"organization_id": organization_id},
        )
    return organization


@dataclass(frozen=True, kw_only=True)
class AddMember:
    organization_id: str
    user_id: str
    role: Role
    principal: Principal


class AddMemberHandler:
    """A caller grants at most its own role; a user is a member once."""

    def __init__(self, uow: Callable[[], OpsUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, command: AddMember) -> Member:
        require_organization(command.organization_id)
        now = self._clock.now()
        actor = command.principal.actor
        async with self._uow() as uow:
            organization = await uow.organizations.get(command.organization_id)
            if organization is None:
                raise NotFound(
                    f"organization {command.organization_id} not found",
                    reason=Reason.ORGANIZATION_NOT_FOUND,
                    metadata={"organization_id": command.organization_id},
                )
            member = organization.add_member(
                user_id=command.user_id, role=command.role, granted_by=command.principal, actor=actor, now=now
            )
            if await uow.members.get(organization.id, member.user_id) is not None:
                raise AlreadyExists(
                    f"{member.user_id!r} is a member already",
                    reason=Reason.MEMBER_ALREADY_EXISTS,
                    metadata={"user_id": member.user_id},
                )
            uow.members.add(member)
            uow.track(organization)
            uow.audit.add(
                AuditEntry.record(
                    organization_id=organization.id,
                    actor=actor,
                    action="member.added",
                    target=f"member/{member.user_id}",
                    summary=f"{member.user_id!r} joined as {member.role.name}",
                    now=now,
                )
            )
            await uow.commit()
        return member


@dataclass(frozen=True, kw_only=True)
class ListMembers:
    organization_id: str
    page: PageRequest


class ListMembersHandler:
    def __init__(self, uow: Callable[[], OpsUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: ListMembers) -> Page[Member]:
        require_organization(query.organization_id)
        async with self._uow() as uow:
            members = await uow.members.list(
                query.organization_id, after_id=query.page.after_id, limit=query.page.size
            )
        return Page.of(members, query.page, id_of=lambda member: member.id)
