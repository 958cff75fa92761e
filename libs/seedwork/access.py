"""Who is calling: an organization's API key with its role, or the deployment's service credential.

Roles are ordered (OWNER > ADMIN > MEMBER): a key may do whatever its role or any lower one may. Values
match `whatlead.ops.v1.MemberRole` and `whatlead.common.v1.MinimumRole` without their prefix."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

SERVICE_ACTOR = "service"


def named_actor(caller: str, name: str) -> str:
    """An operator's own name with the credential that acted for it: "alice (key:0193…)". Either alone
    when the other is empty. The name is what the operator typed; the credential is what was proven."""
    name = name.strip()
    if name and caller:
        return f"{name} ({caller})"
    return name or caller


class Role(IntEnum):
    MEMBER = 1
    ADMIN = 2
    OWNER = 3


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request. A service principal has no organization of its own: it names one in
    each call (or none, for the internal listings across organizations)."""

    organization_id: str
    role: Role | None
    api_key_id: str = ""

    @classmethod
    def service(cls) -> Principal:
        return cls(organization_id="", role=None)

    @property
    def is_service(self) -> bool:
        return self.role is None

    @property
    def actor(self) -> str:
        """How events and the audit log name this caller: "key:<api key id>" or "service"."""
        return SERVICE_ACTOR if self.is_service else f"key:{self.api_key_id}"

    def may_grant(self, role: Role) -> bool:
        """A caller hands out at most its own role (an admin cannot mint an owner's key)."""
        return self.is_service or (self.role is not None and role <= self.role)
