"""Instance: one WhatsApp number an organization sends through, behind one provider."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from libs.seedwork.aggregate import AggregateRoot
from libs.seedwork.errors import Violations
from libs.seedwork.ids import new_id
from libs.seedwork.phone import normalize_phone
from libs.seedwork.shared_kernel import ConnectionState, Provider, Purpose
from reputation_service.domain.events import InstanceChanged, InstanceRegistered

_PROVIDER_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$")
MAX_DISPLAY_NAME = 100


@dataclass(frozen=True, kw_only=True)
class InstanceChanges:
    """A partial update: None means 'leave as it is'."""

    display_name: str | None = None
    provider: Provider | None = None
    provider_instance_ref: str | None = None
    phone: str | None = None
    purposes: frozenset[Purpose] | None = None
    connection_state: ConnectionState | None = None


@dataclass(kw_only=True, eq=False)
class Instance(AggregateRoot):
    id: str
    organization_id: str
    display_name: str
    provider: Provider
    provider_instance_ref: str
    phone: str
    purposes: frozenset[Purpose]
    connection_state: ConnectionState
    created_at: datetime
    updated_at: datetime
    version: int = 1

    @classmethod
    def register(
        cls,
        *,
        organization_id: str,
        display_name: str,
        provider: Provider | None,
        provider_instance_ref: str,
        phone: str,
        purposes: frozenset[Purpose],
        connection_state: ConnectionState | None,
        now: datetime,
    ) -> Instance:
        violations = Violations()
        violations.check(bool(organization_id.strip()), "organization_id", "must not be empty")
        _validate(
            violations,
            display_name=display_name,
            provider=provider,
            provider_instance_ref=provider_instance_ref,
            phone=phone,
            purposes=purposes,
        )
        violations.raise_if_any()
        assert provider is not None
        instance = cls(
            id=new_id(),
            organization_id=organization_id,
            display_name=display_name.strip(),
            provider=provider,
            provider_instance_ref=provider_instance_ref,
            phone=normalize_phone(phone) or "",
            purposes=purposes,
            connection_state=connection_state or ConnectionState.UNKNOWN,
            created_at=now,
            updated_at=now,
        )
        instance.record(
            InstanceRegistered(
                event_id=new_id(),
                organization_id=organization_id,
                aggregate_id=instance.id,
                occurred_at=now,
                instance=instance.snapshot(),
            )
        )
        return instance

    def apply(self, changes: InstanceChanges, *, now: datetime) -> tuple[str, ...]:
        """Apply a partial update; records InstanceChanged and returns the changed fields (none: no event)."""
        violations = Violations()
        _validate(
            violations,
            display_name=changes.display_name,
            provider=changes.provider if changes.provider is not None else self.provider,
            provider_instance_ref=changes.provider_instance_ref,
            phone=changes.phone,
            purposes=changes.purposes,
        )
        violations.raise_if_any()
        wanted = {
            "display_name": changes.display_name.strip() if changes.display_name is not None else None,
            "provider": changes.provider,
            "provider_instance_ref": changes.provider_instance_ref,
            "phone": normalize_phone(changes.phone) if changes.phone is not None else None,
            "purposes": changes.purposes,
            "connection_state": changes.connection_state,
        }
        changed = tuple(
            name for name, value in wanted.items() if value is not None and getattr(self, name) != value
        )
        if not changed:
            return ()
        for name in changed:
            setattr(self, name, wanted[name])
        self.updated_at = now
        self.version += 1
        self.record(
            InstanceChanged(
                event_id=new_id(),
                organization_id=self.organization_id,
                aggregate_id=self.id,
                occurred_at=now,
                instance=self.snapshot(),
                changed_fields=changed,
            )
        )
        return changed

    def snapshot(self) -> Instance:
        """A copy without pending events, safe to put inside an event."""
        return Instance(**{name: getattr(self, name) for name in _FIELDS})


_FIELDS = (
    "id",
    "organization_id",
    "display_name",
    "provider",
    "provider_instance_ref",
    "phone",
    "purposes",
    "connection_state",
    "created_at",
    "updated_at",
    "version",
)


def _validate(
    violations: Violations,
    *,
    display_name: str | None,
    provider: Provider | None,
    provider_instance_ref: str | None,
    phone: str | None,
    purposes: frozenset[Purpose] | None,
) -> None:
    """Checks the fields that are present; None means the field is not being set."""
    if display_name is not None:
        violations.check(
            len(display_name.strip()) <= MAX_DISPLAY_NAME,
            "display_name",
            f"must be at most {MAX_DISPLAY_NAME} characters",
        )
    violations.check(
        provider is not None, "provider", "must be one of " + ", ".join(p.value for p in Provider)
    )
    if provider_instance_ref is not None:
        violations.check(
            bool(_PROVIDER_REF.match(provider_instance_ref)),
            "provider_instance_ref",
            "must be 1-200 characters of letters, digits and _ . : @ -",
        )
    if phone is not None:
        violations.check(
            normalize_phone(phone) is not None,
            "phone",
            "must be an E.164 number: country code and number, 8 to 15 digits",
        )
    if purposes is not None:
        violations.check(bool(purposes), "purposes", "must allow at least one purpose")
