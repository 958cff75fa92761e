"""An in-memory `WhatsAppProvider` for unit tests of the code that sends (no HTTP at all)."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

from libs.providers.capabilities import LookupRequest, LookupResult
from libs.providers.port import (
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
    """Accepts every send unless told otherwise; by default keeps our ids and proves a miss, like the
    simulator's row of the capability table.

    `fail_next(error)` queues errors raised by the next sends, in order. An AMBIGUOUS error queued with
    `accept=True` records the send *and* raises, as a provider that sent but whose answer was lost.
    `keeps_client_id=False` answers with ids of its own (a provider that ignores ours);
    `miss_proves_absence=False` makes a miss INCONCLUSIVE; `can_look_up=False` answers every lookup
    INCONCLUSIVE "lookup_unsupported"; `fail_lookup_next(error)` raises from the next lookup.
    """

    name = "FAKE"

    def __init__(
        self, *, keeps_client_id: bool = True, miss_proves_absence: bool = True, can_look_up: bool = True
    ) -> None:
        self.sent: list[FakeSend] = []
        self.lookups: list[LookupRequest] = []
        self.keeps_client_id = keeps_client_id
        self.miss_proves_absence = miss_proves_absence
        self.can_look_up = can_look_up
        self._failures: deque[tuple[ProviderError, bool]] = deque()
        self._lookup_failures: deque[ProviderError] = deque()
        self._ids = itertools.count(1)

    def fail_next(self, error: ProviderError, *, accept: bool = False) -> None:
        self._failures.append((error, accept))

    def fail_lookup_next(self, error: ProviderError) -> None:
        self._lookup_failures.append(error)

    async def _accept(self, request: SendRequest) -> SentMessage:
        failure = self._failures.popleft() if self._failures else None
        if failure is not None and not failure[1]:
            raise failure[0]
        own_id = f"FAKE{next(self._ids):012d}"
        message_id = (request.client_message_id if self.keeps_client_id else None) or own_id
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

    async def find_sent_message(self, request: LookupRequest) -> LookupResult:
        self.lookups.append(request)
        if self._lookup_failures:
            raise self._lookup_failures.popleft()
        if not self.can_look_up:
            return LookupResult.inconclusive("lookup_unsupported")
        if request.client_message_id is None:
            return LookupResult.inconclusive("no_client_id")
        for send in self.sent:
            if (
                send.provider_message_id == request.client_message_id
                and send.request.instance_ref == request.instance_ref
                and send.request.recipient == request.recipient
            ):
                return LookupResult.found(send.provider_message_id)
        return LookupResult.absent() if self.miss_proves_absence else LookupResult.inconclusive("not_found")
