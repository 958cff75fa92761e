"""API keys: an organization's credentials, each with a role. The secret is shown once, when issued; only
its SHA-256 is kept (docs/adr/0046-api-keys.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from libs.seedwork.access import Principal, Role
from libs.seedwork.aggregate import AggregateRoot
from libs.seedwork.api_keys import IssuedKey, PresentedKey, same_hash
from libs.seedwork.errors import PermissionDenied, Reason
from libs.seedwork.ids import new_id
from ops_service.domain.events import ApiKeyCreated, ApiKeyRevoked


@dataclass(kw_only=True, eq=False)
class ApiKey(AggregateRoot):
    id: str
    organization_id: str
    name: str
    role: Role
    prefix: str
    secret_sha256: bytes
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None

    @classmethod
    def issue(
        cls,
        *,
        organization_id: str,
        name: str,
        role: Role,
        issued: IssuedKey,
        granted_by: Principal,
        now: datetime,
    ) -> ApiKey:
        """A key grants at most its creator's role (an admin cannot mint an owner's key)."""
        if not granted_by.may_grant(role):
            raise PermissionDenied(
                f"a key with the {role.name} role is above the caller's own role",
                reason=Reason.ROLE_ABOVE_CALLER,
                metadata={"role": role.name},
            )
        key = cls(
            id=new_id(),
            organization_id=organization_id,
            name=name.strip(),
            role=role,
            prefix=issued.prefix,
            secret_sha256=issued.sha256,
            created_at=now,
            created_by=granted_by.actor,
        )
        key.record(
            ApiKeyCreated(
                event_id=new_id(),
                organization_id=organization_id,
                aggregate_id=key.id,
                occurred_at=now,
                actor=granted_by.actor,
                api_key=key.snapshot(),
            )
        )
        return key

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def revoke(self, *, actor: str, now: datetime) -> bool:
        """Idempotent: False (and nothing recorded) when it was revoked already."""
        if self.revoked:
            return False
        self.revoked_at = now
        self.record(
            ApiKeyRevoked(
                event_id=new_id(),
                organization_id=self.organization_id,
                aggregate_id=self.id,
                occurred_at=now,
                actor=actor,
                api_key=self.snapshot(),
            )
        )
        return True

    def accepts(self, presented: PresentedKey) -> bool:
        """The presented key is this one, and it still works. The hashes are compared in constant time."""
        return same_hash(presented.sha256, self.secret_sha256) and not self.revoked

    def snapshot(self) -> ApiKey:
        """An unchanging copy for an event (the key itself may still change in this transaction)."""
        return dataclasses.replace(self, pending_events=[])
