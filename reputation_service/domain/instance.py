"""Instance: one WhatsApp number an organization sends through, behind one provider.

The provider's version and engine say which row of the capability table (`libs/providers/capabilities.py`)
the adapters read: "" and UNSPECIFIED mean unknown, so the provider's most cautious row applies. Both
describe a release of one provider, so a change of provider resets them to unknown unless the same change
names the new ones; only WAHA runs several engines.

The connection state follows what the provider reports (webhooks through the gateway, the Executor's
probes, the registry's own status checks). Reports arrive late, out of order and twice, so each carries
the time it was observed and one older than the last applied changes nothing:

    report(state, observed_at) ──observed_at <= connection_observed_at──▶ ignored
              │ newer
              ▼
    another state ──▶ applied with its reason, InstanceChanged (connection_state)
    the same      ──▶ its reason and observed time kept, no event (nothing a projection reads changed)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from libs.seedwork.aggregate import AggregateRoot
from libs.seedwork.errors import Violations
from libs.seedwork.ids import new_id
from libs.seedwork.phone import normalize_phone
from libs.seedwork.shared_kernel import ConnectionState, Provider, ProviderEngine, Purpose
from reputation_service.domain.events import InstanceChanged, InstanceRegistered

_PROVIDER_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$")
MAX_DISPLAY_NAME = 100
# The contract's rule for provider_version (reputation.proto): "2026.4.3", "2.3.6-rc.1", or "" (unknown).
_PROVIDER_VERSION = re.compile(r"([0-9]+([.][0-9]+){0,3}([-+][0-9A-Za-z.]{1,20})?)?")
MAX_PROVIDER_VERSION = 32
MAX_CONNECTION_REASON = 200
# The only provider that runs several engines (WEBJS, NOWEB, GOWS).
ENGINE_PROVIDERS = frozenset({Provider.WAHA})


@dataclass(frozen=True, kw_only=True)
class InstanceChanges:
    """A partial update: None means 'leave as it is'."""

    display_name: str | None = None
    provider: Provider | None = None
    provider_instance_ref: str | None = None
    phone: str | None = None
    purposes: frozenset[Purpose] | None = None
    connection_state: ConnectionState | None = None
    provider_version: str | None = None  # "": unknown
    provider_engine: ProviderEngine | None = None  # UNSPECIFIED: unknown, or a provider with one engine


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
    provider_version: str = ""
    provider_engine: ProviderEngine = ProviderEngine.UNSPECIFIED
    # The provider's words for the last connection change, and when the last report applied was observed.
    connection_reason: str = ""
    connection_observed_at: datetime | None = None

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
        provider_version: str = "",
        provider_engine: ProviderEngine = ProviderEngine.UNSPECIFIED,
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
            provider_version=provider_version,
            provider_engine=provider_engine,
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
            provider_version=provider_version,
            provider_engine=provider_engine,
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
        provider = changes.provider if changes.provider is not None else self.provider
        provider_version, provider_engine = changes.provider_version, changes.provider_engine
        if provider is not self.provider:
            # Another provider's release is not this one's: unknown until the caller says which.
            provider_version = "" if provider_version is None else provider_version
            provider_engine = ProviderEngine.UNSPECIFIED if provider_engine is None else provider_engine
        violations = Violations()
        _validate(
            violations,
            display_name=changes.display_name,
            provider=provider,
            provider_instance_ref=changes.provider_instance_ref,
            phone=changes.phone,
            purposes=changes.purposes,
            provider_version=provider_version,
            provider_engine=provider_engine if provider_engine is not None else self.provider_engine,
        )
        violations.raise_if_any()
        wanted = {
            "display_name": changes.display_name.strip() if changes.display_name is not None else None,
            "provider": changes.provider,
            "provider_instance_ref": changes.provider_instance_ref,
            "phone": normalize_phone(changes.phone) if changes.phone is not None else None,
            "purposes": changes.purposes,
            "connection_state": changes.connection_state,
            "provider_version": provider_version,
            "provider_engine": provider_engine,
        }
        changed = tuple(
            name for name, value in wanted.items() if value is not None and getattr(self, name) != value
        )
        if not changed:
            return ()
        for name in changed:
            setattr(self, name, wanted[name])
        self._changed(changed, now)
        return changed

    def observe_connection(
        self, state: ConnectionState, *, reason: str, observed_at: datetime, now: datetime
    ) -> bool:
        """Apply a connection state the provider reported as observed at `observed_at`. A report not newer
        than the last one applied is ignored (False); a newer one is kept with its reason, and a change of
        state is a new version announced as InstanceChanged. True when applied."""
        if self.connection_observed_at is not None and observed_at <= self.connection_observed_at:
            return False
        reason = reason[:MAX_CONNECTION_REASON]
        changed = state is not self.connection_state
        self.connection_state, self.connection_reason = state, reason
        self.connection_observed_at = observed_at
        # Only a change of state is a new version (with its event): projections count on one event per
        # version. The same state confirmed later is kept by the repository's confirm_connection.
        if changed:
            self._changed(("connection_state",), now)
        return True

    def _changed(self, fields: tuple[str, ...], now: datetime) -> None:
        """A new version, announced with the whole instance and the fields that changed."""
        self.version += 1
        self.updated_at = now
        self.record(
            InstanceChanged(
                event_id=new_id(),
                organization_id=self.organization_id,
                aggregate_id=self.id,
                occurred_at=now,
                instance=self.snapshot(),
                changed_fields=fields,
            )
        )

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
    "provider_version",
    "provider_engine",
    "connection_reason",
    "connection_observed_at",
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
    provider_version: str | None,
    provider_engine: ProviderEngine,
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
    if provider_version is not None:
        violations.check(
            len(provider_version) <= MAX_PROVIDER_VERSION
            and _PROVIDER_VERSION.fullmatch(provider_version) is not None,
            "provider_version",
            f"must be a release like 2026.4.3 (digits and dots, an optional -suffix, at most "
            f"{MAX_PROVIDER_VERSION} characters), or empty when unknown",
        )
    if provider is not None:
        violations.check(
            provider in ENGINE_PROVIDERS or provider_engine is ProviderEngine.UNSPECIFIED,
            "provider_engine",
            "only WAHA has engines",
        )
