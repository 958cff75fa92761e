"""API keys: issued (the secret shown once), revoked, listed, resolved; and the key directory every
service authenticates from (docs/adr/0046-api-keys.md)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from libs.seedwork.access import Principal, Role
from libs.seedwork.api_keys import parse_key
from libs.seedwork.clock import Clock
from libs.seedwork.errors import NotFound, Reason
from libs.seedwork.ids import is_valid_id
from libs.seedwork.organizations import require_organization
from libs.seedwork.pagination import Page, PageRequest
from ops_service.application.ports import KeyDirectory, KeyIssuer
from ops_service.domain.api_key import ApiKey
from ops_service.domain.audit import AuditEntry
from ops_service.domain.ports import OpsUnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CreateApiKey:
    organization_id: str
    name: str
    role: Role
    principal: Principal


@dataclass(frozen=True)
class IssuedApiKey:
    key: ApiKey
    secret: str  # returned to the caller this once, never stored or logged


class CreateApiKeyHandler:
    """A new key of an existing organization, at most the caller's role (ApiKeyCreated)."""

    def __init__(
        self,
        uow: Callable[[], OpsUnitOfWork],
        clock: Clock,
        issue: KeyIssuer,
        directory: KeyDirectory | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._issue = issue
        self._directory = directory

    async def __call__(self, command: CreateApiKey) -> IssuedApiKey:
        require_organization(command.organization_id)
        now = self._clock.now()
        issued = self._issue()
        async with self._uow() as uow:
            if await uow.organizations.get(command.organization_id) is None:
                raise NotFound(
                    f"organization {command.organization_id} not found",
                    reason=Reason.ORGANIZATION_NOT_FOUND,
                    metadata={"organization_id": command.organization_id},
                )
            key = ApiKey.issue(
                organization_id=command.organization_id,
                name=command.name,
                role=command.role,
                issued=issued,
                granted_by=command.principal,
                now=now,
            )
            uow.api_keys.add(key)
            uow.track(key)
            uow.audit.add(
                AuditEntry.record(
                    organization_id=key.organization_id,
                    actor=key.created_by,
                    action="api_key.created",
                    target=f"api_key/{key.id}",
                    summary=f"{key.role.name} key {key.name!r} ({key.prefix}) created",
                    now=now,
                )
            )
            await uow.commit()
        await announce(self._directory, key)
        return IssuedApiKey(key, issued.secret)


@dataclass(frozen=True, kw_only=True)
class RevokeApiKey:
    organization_id: str
    api_key_id: str
    principal: Principal


class RevokeApiKeyHandler:
    """Idempotent: revoking a revoked key answers it as it is (no new event, no audit entry)."""

    def __init__(
        self, uow: Callable[[], OpsUnitOfWork], clock: Clock, directory: KeyDirectory | None = None
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._directory = directory

    async def __call__(self, command: RevokeApiKey) -> tuple[ApiKey, bool]:
        """The key, and whether this call revoked it."""
        require_organization(command.organization_id)
        now = self._clock.now()
        async with self._uow() as uow:
            key = await uow.api_keys.get(command.organization_id, command.api_key_id)
            if key is None:
                raise NotFound(
                    f"API key {command.api_key_id} not found",
                    reason=Reason.API_KEY_NOT_FOUND,
                    metadata={"api_key_id": command.api_key_id},
                )
            actor = command.principal.actor
            if not key.revoke(actor=actor, now=now):
                return key, False
            uow.track(key)
            uow.audit.add(
                AuditEntry.record(
                    organization_id=key.organization_id,
                    actor=actor,
                    action="api_key.revoked",
                    target=f"api_key/{key.id}",
                    summary=f"{key.role.name} key {key.name!r} ({key.prefix}) revoked",
                    now=now,
                )
            )
            await uow.commit()
        await announce(self._directory, key)
        return key, True


async def announce(directory: KeyDirectory | None, key: ApiKey) -> None:
    """Puts the key's new state in the directory before the call answers, so a key works (or stops
    working) everywhere as soon as its creator hears back. Best effort: the directory's consumer of the
    key's event (PublishKeyRecordHandler) is what guarantees it, so a failure here only delays it."""
    if directory is None:
        return
    try:
        await directory.put(key)
    except Exception:
        log.warning("key directory not updated at once; its consumer will", extra={"api_key_id": key.id})


@dataclass(frozen=True, kw_only=True)
class ListApiKeys:
    organization_id: str
    page: PageRequest


class ListApiKeysHandler:
    def __init__(self, uow: Callable[[], OpsUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: ListApiKeys) -> Page[ApiKey]:
        require_organization(query.organization_id)
        async with self._uow() as uow:
            keys = await uow.api_keys.list(
                query.organization_id, after_id=query.page.after_id, limit=query.page.size
            )
        return Page.of(keys, query.page, id_of=lambda key: key.id)


@dataclass(frozen=True, kw_only=True)
class ResolveApiKey:
    secret: str


class ResolveApiKeyHandler:
    """Which key a presented secret is: found by its public prefix, then its hash compared in constant
    time. An unknown, malformed or revoked key is NotFound, all alike."""

    def __init__(self, uow: Callable[[], OpsUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: ResolveApiKey) -> ApiKey:
        presented = parse_key(query.secret)
        if presented is not None:
            async with self._uow() as uow:
                key = await uow.api_keys.find_by_prefix(presented.prefix)
            if key is not None and key.accepts(presented):
                return key
        raise NotFound("no such API key", reason=Reason.API_KEY_NOT_FOUND)


class PublishKeyRecordHandler:
    """Puts a key's current record into the key directory, in the caller's (the consumer's) transaction:
    whichever of its events arrives, late or twice, the directory gets the state ops holds now."""

    def __init__(self, directory: KeyDirectory) -> None:
        self._directory = directory

    async def __call__(self, uow: OpsUnitOfWork, key_id: str) -> ApiKey | None:
        key = await uow.api_keys.get_any(key_id) if is_valid_id(key_id) else None
        if key is not None:
            await self._directory.put(key)
        return key
