"""An in-memory `WhatsAppProvider` for unit tests of the code that sends (no HTTP at all)."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from libs.providers.port import (
    ProviderCapabilities,
    ProviderError,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    SentMessage,
    WhatsAppProvider,
)

SendRequest = SendTextRequest | SendMediaRequest | SendAudioRequest | SendReactionRequest


@dataclass(frozen=True, slots=True)
class FakeSend:
    """One accepted send: the request and the id the fake answered with."""

    request: SendRequest
    provider_message_id: str


class FakeWhatsAppProvider(WhatsAppProvider):
    """Accepts every send unless told otherwise; behaves like WAHA for client ids and lookups.

    `fail_next(error)` queues errors raised by the next sends, in order. An AMBIGUOUS error queued with
    `accept=True` records the send *and* raises, as a provider that sent but whose answer was lost.
    """

    name = "FAKE"
    capabilities: ClassVar[ProviderCapabilities] = ProviderCapabilities(
        supports_client_message_id=True, supports_lookup=True
    )

    def __init__(self) -> None:
        self.sent: list[FakeSend] = []
        self._failures: deque[tuple[ProviderError, bool]] = deque()
        self._ids = itertools.count(1)

    def fail_next(self, error: ProviderError, *, accept: bool = False) -> None:
        self._failures.append((error, accept))

    async def _accept(self, request: SendRequest) -> SentMessage:
        failure = self._failures.popleft() if self._failures else None
        if failure is not None and not failure[1]:
            raise failure[0]
        message_id = request.client_message_id or f"FAKE{next(self._ids):012d}"
        self.sent.append(FakeSend(request, message_id))
        if failure is not None:
            raise failure[0]
        return SentMessage(message_id)

    async def send_text(self, request: SendTextRequest) -> SentMessage:
        return await self._accept(request)

    async def send_media(self, request: SendMediaRequest) -> SentMessage:
        return await self._accept(request)

    async def send_audio(self, request: SendAudioRequest) -> SentMessage:
        return await self._accept(request)

    async def send_reaction(self, request: SendReactionRequest) -> SentMessage:
        return await self._accept(request)

    async def find_sent_message(
        self, instance_ref: str, client_message_id: str, *, recipient: str
    ) -> SentMessage | None:
        for send in self.sent:
            request = send.request
            if (
                request.client_message_id == client_message_id
                and request.instance_ref == instance_ref
                and request.recipient == recipient
            ):
                return SentMessage(send.provider_message_id)
        return None
