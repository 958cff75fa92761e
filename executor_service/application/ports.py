"""Ports of the executor's use cases other than storage: the provider behind a send, and the kill-switch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from executor_service.domain.controls import Hold
from executor_service.domain.job import MessageExecutionJob
from libs.seedwork.shared_kernel import Provider


class KillSwitch(Protocol):
    """The current pauses, as projected from ops' control events (kept fresh by the projection)."""

    async def hold_for(
        self, *, organization_id: str, instance_id: str, campaign_id: str, now: datetime
    ) -> Hold | None:
        """The pause holding a job of this scope right now, or None to go ahead."""
        ...


@dataclass(frozen=True, slots=True)
class SendReceipt:
    provider_message_id: str


class MessageSender(Protocol):
    """Sends a job's message through the job's provider. Raises `SendFailed` with a classified error."""

    def client_message_id(self, *, provider: Provider, intent_id: str, message_type: str) -> str | None:
        """The id we choose for this intent's message, when the provider accepts one (deterministic, so a
        crashed worker can recompute it and ask the provider about it)."""
        ...

    def can_look_up(self, provider: Provider) -> bool:
        """Whether `find_sent` can tell whether a message went out."""
        ...

    async def send(self, job: MessageExecutionJob) -> SendReceipt:
        """The provider accepted the message: its id for it."""
        ...

    async def find_sent(self, job: MessageExecutionJob) -> SendReceipt | None:
        """The provider's record of this job's message, or None when it provably never got it."""
        ...
