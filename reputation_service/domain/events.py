"""What the instance registry announces; infrastructure maps each to its protobuf contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from libs.seedwork.aggregate import DomainEvent

if TYPE_CHECKING:
    from reputation_service.domain.instance import Instance


@dataclass(frozen=True, kw_only=True)
class InstanceRegistered(DomainEvent):
    """A number joined an organization's registry; `instance` is its state right after."""

    instance: Instance


@dataclass(frozen=True, kw_only=True)
class InstanceChanged(DomainEvent):
    """Fields of an instance changed; `instance` is its whole state after the change."""

    instance: Instance
    changed_fields: tuple[str, ...]
