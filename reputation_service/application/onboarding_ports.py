"""Ports of onboarding: the instance's session at its provider, and the live feed of instance changes.

Both speak the registry's words (states, QR codes); the adapters translate the provider's calls and
errors (`infrastructure/provider_sessions.py`) and the bus (`infrastructure/instance_changes.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from libs.seedwork.shared_kernel import ConnectionState, Provider
from reputation_service.domain.instance import Instance


@dataclass(frozen=True)
class QrImage:
    """A QR code to scan: the text it encodes and the provider's PNG of it (either may be empty). A login
    credential while shown: never logged, never published."""

    code: str = field(repr=False)
    png: bytes = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class SessionView:
    """Where the instance's session stands at its provider, as one answer said it."""

    state: ConnectionState
    reason: str = ""
    qr: QrImage | None = None
    pairing_code: str = ""


class InstanceSessions(Protocol):
    """The instance's session at its provider. Raises FailedPrecondition when the provider is not
    configured here or refuses, Unavailable when it does not answer."""

    def configured(self) -> frozenset[Provider]:
        """The providers this process can reach."""
        ...

    async def connect(self, instance: Instance, *, pairing_phone: str) -> SessionView:
        """Point the session's webhook at the gateway's URL for the instance, with the instance's webhook
        secret; create or restart the session; and answer where it stands: with the QR code to scan, and
        a pairing code when `pairing_phone` is given."""
        ...

    async def qr(self, instance: Instance) -> QrImage | None:
        """The QR code waiting to be scanned now; None when there is none."""
        ...

    async def status(self, instance: Instance) -> SessionView:
        """Ask the provider where the session stands now (a session it does not know: UNKNOWN)."""
        ...

    async def logout(self, instance: Instance) -> None: ...

    async def delete(self, instance: Instance) -> None: ...


class InstanceChangeFeed(Protocol):
    """Every InstanceChanged the registry publishes, fanned out by instance id to the watchers of this
    process from one shared subscription."""

    async def watch(self, instance_id: str, *, capacity: int) -> InstanceWatch:
        """Start receiving the instance's changes (the caller closes it)."""
        ...


@dataclass(frozen=True, kw_only=True)
class InstanceChange:
    """One InstanceChanged as a watcher needs it: which version, its connection state, when."""

    version: int
    state: ConnectionState
    changed_at: datetime | None


class InstanceWatch(Protocol):
    """One watcher's bounded queue of the changes of one instance."""

    async def next_change(self) -> InstanceChange:
        """The instance's next change; raises WatcherOverflowed once the queue overflowed (the watcher
        was too slow)."""
        ...

    def close(self) -> None: ...


class WatcherOverflowed(Exception):
    """A watcher fell further behind than its queue holds: it is cut off rather than buffered for."""
