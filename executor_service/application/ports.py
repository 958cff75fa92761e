"""Ports of the executor's use cases other than storage: the provider behind a send, its capability table,
the kill-switch, the instances' restrictions and the providers' health probes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from executor_service.domain.controls import Hold
from executor_service.domain.instance import InstanceHealth, InstanceHold, InstanceProfile
from executor_service.domain.job import MessageExecutionJob
from libs.providers.capabilities import Capabilities, LookupMethod, LookupResult, ProviderProfile
from libs.seedwork.shared_kernel import Provider

# The capability table (libs.providers.capabilities.capabilities_of), injected so tests choose the rows.
CapabilitiesOf = Callable[[ProviderProfile], Capabilities]

# Lookups that search for our id: without one, they cannot find anything.
_BY_OUR_ID = frozenset({LookupMethod.BY_ID, LookupMethod.BY_CHAT_AND_ID})


def profile_of(instance: InstanceProfile | None, provider: Provider) -> ProviderProfile:
    """The provider profile of a job's instance; an instance the registry has not described gets its
    provider's most cautious row (no version, no engine)."""
    if instance is None or instance.provider is not provider:
        return ProviderProfile(provider)
    return ProviderProfile(provider, instance.provider_version, instance.provider_engine)


def can_look_up(capabilities: Capabilities, job: MessageExecutionJob) -> bool:
    """Whether the provider can be asked about this job's send at all."""
    if not capabilities.can_look_up:
        return False
    return job.client_message_id is not None or capabilities.lookup not in _BY_OUR_ID


class KillSwitch(Protocol):
    """The current pauses, as projected from ops' control events (kept fresh by the projection)."""

    async def hold_for(
        self, *, organization_id: str, instance_id: str, campaign_id: str, now: datetime
    ) -> Hold | None:
        """The pause holding a job of this scope right now, or None to go ahead."""
        ...


class InstanceDirectory(Protocol):
    """The instance projection as the workers read it (right before a call, and after an unknown one)."""

    async def hold_for(self, instance_id: str, now: datetime) -> InstanceHold | None:
        """The restriction holding this instance's jobs right now (time-lock, logged out, banned)."""
        ...

    async def profile_of(self, job: MessageExecutionJob) -> ProviderProfile:
        """The provider profile of the job's instance (see `profile_of`)."""
        ...

    def invalidate(self) -> None:
        """The projection just changed here: read it again before the next check."""
        ...


@dataclass(frozen=True, slots=True)
class SendReceipt:
    provider_message_id: str


class MessageSender(Protocol):
    """Sends a job's message through the job's provider. Raises `SendFailed` with a classified error."""

    async def send(self, job: MessageExecutionJob) -> SendReceipt:
        """The provider accepted the message: its id for it."""
        ...

    async def look_up(
        self, job: MessageExecutionJob, profile: ProviderProfile, *, sent_after: datetime
    ) -> LookupResult:
        """Ask the provider whether the job's message left after `sent_after`. Raises `SendFailed` when the
        provider could not answer now (asked again later)."""
        ...


class ProbeFailed(Exception):
    """A health probe got no usable answer; `code` is short and log-safe ("http_503", "timeout")."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(code)


class HealthProber(Protocol):
    """Asks a provider how an instance is (connection, time-lock, capping), where it can tell."""

    def providers(self) -> Sequence[Provider]:
        """The providers this executor has an endpoint for."""
        ...

    def can_probe(self, profile: ProviderProfile, instance_ref: str) -> bool:
        """Whether an endpoint is configured for this instance and its provider offers a health check."""
        ...

    async def probe(self, profile: ProviderProfile, instance_ref: str) -> InstanceHealth:
        """The instance's health now; raises `ProbeFailed`."""
        ...
