"""What the ops context announces; infrastructure maps each to its protobuf contract. Every event names
who caused it (`actor`: "key:<api key id>", "service", or "" for the service itself, e.g. a timed pause
ending)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from libs.seedwork.aggregate import DomainEvent

if TYPE_CHECKING:
    from ops_service.domain.api_key import ApiKey
    from ops_service.domain.control import ControlStatus, ExecutionControl
    from ops_service.domain.organization import Member, Organization
    from ops_service.domain.plan import Plan


@dataclass(frozen=True, kw_only=True)
class OpsEvent(DomainEvent):
    actor: str = ""


@dataclass(frozen=True, kw_only=True)
class OrganizationCreated(OpsEvent):
    organization: Organization


@dataclass(frozen=True, kw_only=True)
class MemberAdded(OpsEvent):
    member: Member


@dataclass(frozen=True, kw_only=True)
class ApiKeyCreated(OpsEvent):
    """Carries the key's SHA-256 (never the secret): every service checks presented keys against it."""

    api_key: ApiKey


@dataclass(frozen=True, kw_only=True)
class ApiKeyRevoked(OpsEvent):
    api_key: ApiKey


@dataclass(frozen=True, kw_only=True)
class ExecutionControlChanged(OpsEvent):
    """A scope was paused or resumed; `control` is its state after the change (a copy, never mutated)."""

    control: ExecutionControl
    previous_status: ControlStatus


@dataclass(frozen=True, kw_only=True)
class PlanChanged(OpsEvent):
    plan: Plan
