"""The session port: link a WhatsApp number to a provider session by QR code (or pairing code), point the
session's webhooks at WhatLead, follow its state, and undo it all.

A separate port from `WhatsAppProvider` (the sends) because a different service uses it: the Executor
only sends, the instance registry only manages sessions. The same adapter objects implement both (they
share the HTTP plumbing and the error classification of `base.py`); each service depends on the one it
needs, and its unit tests fake only that one (`libs/providers/fake.py`).

The order a caller follows to connect a number:

    await sessions.set_webhook(ref, SessionWebhook(url=..., secret=...))  # creates the session if needed
    status = await sessions.start_session(ref)                            # create-or-restart, idempotent
    qr = status.qr or await sessions.get_qr(ref)                          # None: connected, or not yet
    code = await sessions.request_pairing_code(ref, "5511987650000")      # where offers_pairing_code

then follows the provider's webhooks (QR updated, connected, logged out, banned) and, now and then,
`session_status(ref)` for a webhook that never came. Setting the webhook first means the first QR event
already reaches the gateway. States use the shared `ConnectionState` vocabulary (CONNECTING, QR_REQUIRED,
CONNECTED, DISCONNECTED, LOGGED_OUT, BANNED, UNKNOWN), so no second enum needs mapping.

Every call raises only `ProviderError`. Session calls change nothing a repeat would break (a second
create finds the session, a second logout finds it logged out), so they are never AMBIGUOUS: a 5xx, a
timeout or a refused connection is TRANSIENT, a refusal PERMANENT, a rejected key RESTRICTED
UNAUTHORIZED, and a session the provider does not know RESTRICTED DISCONNECTED with the code
`SESSION_NOT_FOUND` whatever the provider calls it. Endpoints and sources: docs/providers.md, "Sessions".
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from yarl import URL

from libs.providers.base import HttpFailure, HttpProvider
from libs.providers.health import probe_connection
from libs.providers.port import ErrorClass, ErrorOrigin, ProviderError
from libs.seedwork.phone import normalize_phone
from libs.seedwork.shared_kernel import ConnectionState

SESSION_NOT_FOUND = "session_not_found"
# What the adapters' own error rules call an unknown session (Evolution and TurboZap say "instance").
_NOT_FOUND_CODES = frozenset({SESSION_NOT_FOUND, "instance_not_found"})
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, slots=True)
class QrCode:
    """A QR code waiting to be scanned: the text it encodes (what a terminal draws) and its PNG image.

    A provider that serves only one of them leaves the other empty (wuzapi serves only the image). The
    text links a device to the account for as long as it is shown: it never goes into a log.
    """

    raw: str
    png: bytes

    def __post_init__(self) -> None:
        if not self.raw and not self.png:
            raise ValueError("a QR code needs its text or its image")

    def __repr__(self) -> str:  # the code itself stays out of logs and tracebacks
        return f"QrCode(raw=<{len(self.raw)} chars>, png=<{len(self.png)} bytes>)"


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """Where a session stands. `reason` is the provider's own word for it, log-safe ("SCAN_QR_CODE",
    "close:401", "Connected=true LoggedIn=false"); `qr` is a QR code the same answer carried (Evolution's
    connect does), else None."""

    state: ConnectionState
    reason: str = ""
    qr: QrCode | None = None


@dataclass(frozen=True, slots=True)
class PairingCode:
    """The code a person types on the phone (Linked devices → Link with phone number), e.g. "ABCD-EFGH"."""

    code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionWebhook:
    """Where a session's events go and the instance's webhook secret the gateway verifies them with.

    Each adapter applies the secret the way its provider signs (docs/providers.md, "Sessions"): WAHA's
    HMAC key, wuzapi's HMAC key, Evolution's `jwt_key`, TurboZap's static header. `headers` are extra
    static headers (not for wuzapi, which sends none); `events` are the provider's own event names, empty
    for the adapter's default set (what the gateway reads).
    """

    url: str
    secret: str = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    events: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ProviderError.permanent("invalid_request", "webhook url must be http(s)")
        if not self.secret:
            raise ProviderError.permanent("invalid_request", "a webhook secret is required")


class ProviderSessions(ABC):
    """Port to one provider's session lifecycle. `instance_ref` is the provider's name for the session
    (WAHA session, Evolution instance, TurboZap instance); for wuzapi the adapter's token is the session
    and `instance_ref` only names it in errors."""

    name: ClassVar[str]
    # Whether `request_pairing_code` can work (phone-number login instead of a QR scan).
    offers_pairing_code: ClassVar[bool] = False

    @abstractmethod
    async def start_session(self, instance_ref: str) -> SessionStatus:
        """Create the session if the provider has none by that name and start it, or restart one that is
        stopped or failed; a running session is left as it is. Idempotent."""

    @abstractmethod
    async def set_webhook(self, instance_ref: str, webhook: SessionWebhook) -> None:
        """Send the session's events to `webhook.url`, signed with its secret; the session's webhooks
        become this one alone. Creates the session (not started) where the provider needs it to exist."""

    @abstractmethod
    async def get_qr(self, instance_ref: str) -> QrCode | None:
        """The QR code waiting to be scanned now; None when there is none to show (already connected, or
        still starting: ask again after the next QR webhook)."""

    @abstractmethod
    async def request_pairing_code(self, instance_ref: str, phone: str) -> PairingCode:
        """A code for linking by phone number instead of scanning (`phone`: E.164 digits). PERMANENT
        "pairing_code_unsupported" where the provider has none (see `offers_pairing_code`)."""

    @abstractmethod
    async def session_status(self, instance_ref: str) -> SessionStatus:
        """Ask the provider where the session stands now (the periodic check behind the webhooks)."""

    @abstractmethod
    async def logout_session(self, instance_ref: str) -> None:
        """Unlink the device from the account; the session stays and can show a new QR. A session that is
        not logged in, or unknown, counts as done."""

    @abstractmethod
    async def delete_session(self, instance_ref: str) -> None:
        """Log out and remove the session at the provider. An unknown session counts as done."""


# --- for the adapters ---------------------------------------------------------------------------------


class HttpSessions(HttpProvider, ProviderSessions):
    """The base of an adapter that implements both ports over HTTP. Its session status comes from the
    status call the health probes make (libs/providers/health.py names each provider's)."""

    async def session_status(self, instance_ref: str) -> SessionStatus:
        check_ref(instance_ref)
        return await status_via_probe(self, instance_ref)


def is_session_not_found(error: ProviderError) -> bool:
    return error.code in _NOT_FOUND_CODES


def session_error(error: ProviderError) -> ProviderError:
    """A provider error as a session call reports it.

    The adapters' rules were written for sends, where an unclear answer means "the message may have
    left" (AMBIGUOUS). Nothing is lost by repeating a session call, so such an answer is TRANSIENT when
    the provider failed (5xx, timeouts) and PERMANENT when it refused (Evolution's catch-all 400); every
    unknown-session code becomes `SESSION_NOT_FOUND`.
    """
    origin: ErrorOrigin = {"status": error.status, "provider": error.provider}
    if error.error_class is ErrorClass.AMBIGUOUS:
        if error.status is None or error.status >= 500:
            return ProviderError.transient(error.code, error.message, **origin)
        return ProviderError.permanent(error.code, error.message, **origin)
    if error.code in _NOT_FOUND_CODES and error.code != SESSION_NOT_FOUND and error.restriction is not None:
        return ProviderError.restricted(error.restriction, SESSION_NOT_FOUND, error.message, **origin)
    return error


async def session_call(
    adapter: HttpProvider,
    method: str,
    url: URL,
    *,
    body: dict[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    done_if: Callable[[HttpFailure], bool] | None = None,
) -> Any:
    """One session request through the adapter's plumbing (never AMBIGUOUS, see `session_error`): the
    parsed JSON of a 2xx answer, or None for a failure `done_if` says means "already so" (`says`)."""
    try:
        answer = await adapter.request_json(
            method, url, body=body, params=params, headers=headers, idempotent=True, accept=done_if
        )
    except ProviderError as error:
        converted = session_error(error)
        if converted is error:
            raise
        raise converted from error
    return None if isinstance(answer, HttpFailure) else answer


def says(*phrases: str, status: int | None = None) -> Callable[[HttpFailure], bool]:
    """A `done_if` for an answer whose text holds one of `phrases` (any case), with `status` if given."""
    lowered = tuple(phrase.lower() for phrase in phrases)

    def check(failure: HttpFailure) -> bool:
        if status is not None and failure.status != status:
            return False
        text = failure.lower_text()
        return any(phrase in text for phrase in lowered)

    return check


def unexpected(provider: str, what: str) -> ProviderError:
    """A 2xx answer of an unknown shape: the provider may be a different release; ask again later."""
    return ProviderError.transient("unexpected_response", what, provider=provider)


def png_of(value: Any, provider: str) -> bytes:
    """The PNG bytes of a `data:image/png;base64,…` URL or of bare base64."""
    if not isinstance(value, str) or not value:
        raise unexpected(provider, "no QR image in the answer")
    data = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        png = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise unexpected(provider, "the QR image is not base64") from None
    if not png.startswith(_PNG_MAGIC):
        raise unexpected(provider, "the QR image is not a PNG")
    return png


def pairing_phone(phone: str) -> str:
    """The phone as the providers want it for a pairing code: E.164 digits, no plus."""
    digits = normalize_phone(phone) if phone else ""
    if not digits:
        raise ProviderError.permanent("invalid_request", "phone must be a phone number in E.164 digits")
    return digits


def check_ref(instance_ref: str) -> None:
    if not instance_ref:
        raise ProviderError.permanent("invalid_request", "instance_ref is required")


async def status_via_probe(adapter: HttpProvider, instance_ref: str) -> SessionStatus:
    """The session's state from the same status call the health probes make (libs/providers/health.py),
    without their extras."""
    try:
        health = await probe_connection(adapter, instance_ref)
    except ProviderError as error:
        raise session_error(error) from error
    return SessionStatus(state=health.connection or ConnectionState.UNKNOWN, reason=health.connection_reason)


async def creating_if_unknown(
    call: Callable[[], Awaitable[Any]], create: Callable[[], Awaitable[None]]
) -> None:
    """Make a call on a session, and where the provider does not know the session yet, `create` it and
    make the call again (a webhook set before the first start)."""
    try:
        await call()
    except ProviderError as error:
        if not is_session_not_found(error):
            raise
        await create()
        await call()


async def unless_unknown(call: Awaitable[Any]) -> None:
    """Await a call that undoes something; a session the provider does not know has nothing to undo."""
    try:
        await call
    except ProviderError as error:
        if not is_session_not_found(error):
            raise


def pairing_unsupported(provider: str) -> ProviderError:
    return ProviderError.permanent(
        "pairing_code_unsupported", "this provider links devices by QR code only", provider=provider
    )
