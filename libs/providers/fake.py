"""In-memory fakes of the provider ports for unit tests (no HTTP at all): `FakeWhatsAppProvider` for the
code that sends, `FakeProviderSessions` for the code that connects numbers."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

from libs.providers.capabilities import LookupRequest, LookupResult
from libs.providers.port import (
    ProviderError,
    Restriction,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    SentMessage,
    WhatsAppProvider,
)
from libs.providers.sessions import (
    SESSION_NOT_FOUND,
    PairingCode,
    ProviderSessions,
    QrCode,
    SessionStatus,
    SessionWebhook,
)
from libs.seedwork.shared_kernel import ConnectionState

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


class FakeProviderSessions(ProviderSessions):
    """An in-memory `ProviderSessions` for unit tests of the code that connects numbers.

    `start_session` puts a session in QR_REQUIRED with a QR code; `scan(ref)` connects it, `unlink(ref)`
    logs it out as a phone would, `ban(ref)` bans it, `rotate_qr(ref)` shows a new code. `fail_next(error)`
    queues errors raised by the next calls, in order. `webhooks` keeps what `set_webhook` was given and
    `calls` every call's name and ref.
    """

    name = "FAKE"
    offers_pairing_code = True

    def __init__(self) -> None:
        self.states: dict[str, ConnectionState] = {}
        self.qr_codes: dict[str, QrCode] = {}
        self.webhooks: dict[str, SessionWebhook] = {}
        self.calls: list[tuple[str, str]] = []
        self._failures: deque[ProviderError] = deque()
        self._serial = itertools.count(1)

    def fail_next(self, error: ProviderError) -> None:
        self._failures.append(error)

    def _call(self, call: str, instance_ref: str) -> None:
        self.calls.append((call, instance_ref))
        if self._failures:
            raise self._failures.popleft()

    def _known(self, instance_ref: str) -> ConnectionState:
        state = self.states.get(instance_ref)
        if state is None:
            raise ProviderError.restricted(Restriction.DISCONNECTED, SESSION_NOT_FOUND, provider=self.name)
        return state

    def rotate_qr(self, instance_ref: str) -> QrCode:
        serial = next(self._serial)
        qr = QrCode(raw=f"2@fake-{instance_ref}-{serial}", png=b"\x89PNG\r\n\x1a\nfake")
        self.qr_codes[instance_ref] = qr
        return qr

    def scan(self, instance_ref: str) -> None:
        self.states[instance_ref] = ConnectionState.CONNECTED
        self.qr_codes.pop(instance_ref, None)

    def unlink(self, instance_ref: str) -> None:
        self.states[instance_ref] = ConnectionState.LOGGED_OUT
        self.qr_codes.pop(instance_ref, None)

    def ban(self, instance_ref: str) -> None:
        self.states[instance_ref] = ConnectionState.BANNED
        self.qr_codes.pop(instance_ref, None)

    async def start_session(self, instance_ref: str) -> SessionStatus:
        self._call("start_session", instance_ref)
        if self.states.get(instance_ref) is not ConnectionState.CONNECTED:
            self.states[instance_ref] = ConnectionState.QR_REQUIRED
            self.rotate_qr(instance_ref)
        return SessionStatus(self.states[instance_ref], qr=self.qr_codes.get(instance_ref))

    async def set_webhook(self, instance_ref: str, webhook: SessionWebhook) -> None:
        self._call("set_webhook", instance_ref)
        self.states.setdefault(instance_ref, ConnectionState.DISCONNECTED)
        self.webhooks[instance_ref] = webhook

    async def get_qr(self, instance_ref: str) -> QrCode | None:
        self._call("get_qr", instance_ref)
        self._known(instance_ref)
        return self.qr_codes.get(instance_ref)

    async def request_pairing_code(self, instance_ref: str, phone: str) -> PairingCode:
        self._call("request_pairing_code", instance_ref)
        if self._known(instance_ref) is not ConnectionState.QR_REQUIRED:
            raise ProviderError.permanent("http_422", "no pairing while not waiting for a scan")
        return PairingCode("FAKE-CODE")

    async def session_status(self, instance_ref: str) -> SessionStatus:
        self._call("session_status", instance_ref)
        return SessionStatus(self._known(instance_ref))

    async def logout_session(self, instance_ref: str) -> None:
        self._call("logout_session", instance_ref)
        if instance_ref in self.states:
            self.unlink(instance_ref)

    async def delete_session(self, instance_ref: str) -> None:
        self._call("delete_session", instance_ref)
        self.states.pop(instance_ref, None)
        self.qr_codes.pop(instance_ref, None)
        self.webhooks.pop(instance_ref, None)
