"""The neutral provider port: what the Executor needs from any WhatsApp HTTP API, and nothing more.

Every adapter (Evolution API, WAHA, wuzapi, TurboZap) takes the same typed requests, returns the
provider's message id, and raises exactly one exception type, `ProviderError`, whose `ErrorClass` tells
the caller what it may do next: retry (TRANSIENT), give up (PERMANENT), stop using the instance
(RESTRICTED) or reconcile before anything else (AMBIGUOUS: the request may have left).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, TypedDict, Unpack

from libs.providers.capabilities import LookupRequest, LookupResult
from libs.seedwork.phone import is_group_jid, normalize_phone

# WhatsApp message ids are upper-case hex in practice ("3EB0…" from web clients); providers pass a
# client-chosen id straight to WhatsApp, so anything else risks a rejected or mangled send.
_CLIENT_MESSAGE_ID = re.compile(r"^[0-9A-F]{16,64}$")


class ErrorClass(StrEnum):
    """What the caller may do after a failed provider call."""

    TRANSIENT = "TRANSIENT"  # retry later with backoff (timeouts before sending, connection errors, 5xx, 429)
    PERMANENT = "PERMANENT"  # never retry this message (not on WhatsApp, invalid payload, other 4xx)
    RESTRICTED = "RESTRICTED"  # never retry on this instance; report the restriction to Reputation
    AMBIGUOUS = "AMBIGUOUS"  # the request may have reached the provider: reconcile, never blindly re-send


class Restriction(StrEnum):
    """Why an instance cannot send right now."""

    REACHOUT_TIMELOCK = "REACHOUT_TIMELOCK"  # WhatsApp error 463: cold contacts; cool down at once
    TEMPORARY_BAN = "TEMPORARY_BAN"
    PERMANENT_BAN = "PERMANENT_BAN"
    LOGGED_OUT = "LOGGED_OUT"  # the device was unlinked: needs a new QR pairing
    DISCONNECTED = "DISCONNECTED"  # the session is not connected/working (stopped, failed, missing)
    UNAUTHORIZED = "UNAUTHORIZED"  # the provider rejected our credentials for this instance


class ErrorOrigin(TypedDict, total=False):
    """Where a `ProviderError` comes from: the keywords its shortcut constructors pass on."""

    status: int | None
    provider: str | None


class ProviderError(Exception):
    """The one exception every adapter raises.

    `code` is a short, stable, log-safe token (e.g. "not_on_whatsapp", "http_429"); `message` is a short
    human hint. Neither ever holds secrets, request bodies or full response bodies.
    """

    def __init__(
        self,
        error_class: ErrorClass,
        code: str,
        message: str = "",
        *,
        restriction: Restriction | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        provider: str | None = None,
    ) -> None:
        if (error_class is ErrorClass.RESTRICTED) != (restriction is not None):
            raise ValueError("a restriction goes with ErrorClass.RESTRICTED, and only with it")
        self.error_class = error_class
        self.code = code
        self.message = message
        self.restriction = restriction
        self.retry_after = retry_after
        self.status = status
        self.provider = provider
        super().__init__(str(self))

    def __str__(self) -> str:
        kind = f"{self.error_class}/{self.restriction}" if self.restriction else str(self.error_class)
        where = f"{self.provider}: " if self.provider else ""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        hint = f": {self.message}" if self.message else ""
        return f"{where}{kind} {self.code}{status}{hint}"

    def __repr__(self) -> str:
        return f"ProviderError({self})"

    @property
    def retryable(self) -> bool:
        """True only for TRANSIENT errors: everything else must not be re-sent as is."""
        return self.error_class is ErrorClass.TRANSIENT

    @classmethod
    def transient(
        cls, code: str, message: str = "", *, retry_after: float | None = None, **origin: Unpack[ErrorOrigin]
    ) -> ProviderError:
        return cls(ErrorClass.TRANSIENT, code, message, retry_after=retry_after, **origin)

    @classmethod
    def permanent(cls, code: str, message: str = "", **origin: Unpack[ErrorOrigin]) -> ProviderError:
        return cls(ErrorClass.PERMANENT, code, message, **origin)

    @classmethod
    def ambiguous(cls, code: str, message: str = "", **origin: Unpack[ErrorOrigin]) -> ProviderError:
        return cls(ErrorClass.AMBIGUOUS, code, message, **origin)

    @classmethod
    def restricted(
        cls, restriction: Restriction, code: str, message: str = "", **origin: Unpack[ErrorOrigin]
    ) -> ProviderError:
        return cls(ErrorClass.RESTRICTED, code, message, restriction=restriction, **origin)


def _invalid(code: str, message: str) -> ProviderError:
    return ProviderError.permanent(code, message)


def check_recipient(recipient: str) -> str:
    """Return `recipient` if it is E.164 digits (no plus) or a group JID; otherwise a PERMANENT error."""
    if is_group_jid(recipient) or (recipient and normalize_phone(recipient) == recipient):
        return recipient
    raise _invalid("invalid_recipient", "recipient must be phone digits or a group JID")


def is_group(recipient: str) -> bool:
    return is_group_jid(recipient)


def new_client_message_id(seed: str | None = None) -> str:
    """A WhatsApp-shaped message id ("3EB0" + 16 upper-case hex digits).

    With a `seed` (e.g. the intent id) the id is deterministic, so a crashed worker can recompute it and
    ask the provider whether that exact message went out.
    """
    tail = hashlib.sha256(seed.encode()).hexdigest()[:16] if seed is not None else secrets.token_hex(8)
    return "3EB0" + tail.upper()


def _check_common(instance_ref: str, recipient: str, client_message_id: str | None) -> None:
    if not instance_ref:
        raise _invalid("invalid_request", "instance_ref is required")
    check_recipient(recipient)
    if client_message_id is not None and not _CLIENT_MESSAGE_ID.match(client_message_id):
        raise _invalid("invalid_request", "client_message_id must be 16-64 upper-case hex digits")


def _check_source(url: str | None, data_base64: str | None) -> None:
    if (url is None) == (data_base64 is None):
        raise _invalid("invalid_request", "exactly one of url or data_base64 is required")
    if url is not None and not url.startswith(("http://", "https://")):
        raise _invalid("invalid_request", "url must be http(s)")


class MediaKind(StrEnum):
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"
    DOCUMENT = "DOCUMENT"


@dataclass(frozen=True, slots=True, kw_only=True)
class SendTextRequest:
    """A plain text message. `instance_ref` is the provider's own name for the instance/session."""

    instance_ref: str
    recipient: str
    text: str
    client_message_id: str | None = None

    def __post_init__(self) -> None:
        _check_common(self.instance_ref, self.recipient, self.client_message_id)
        if not self.text:
            raise _invalid("invalid_request", "text is required")


@dataclass(frozen=True, slots=True, kw_only=True)
class SendMediaRequest:
    """An image, video or document, from a public URL or inline base64 (without a data: prefix)."""

    instance_ref: str
    recipient: str
    kind: MediaKind
    mimetype: str
    url: str | None = None
    data_base64: str | None = None
    caption: str | None = None
    filename: str | None = None
    client_message_id: str | None = None

    def __post_init__(self) -> None:
        _check_common(self.instance_ref, self.recipient, self.client_message_id)
        _check_source(self.url, self.data_base64)
        if "/" not in self.mimetype:
            raise _invalid("invalid_request", "mimetype must look like type/subtype")


@dataclass(frozen=True, slots=True, kw_only=True)
class SendAudioRequest:
    """A voice note (push-to-talk). Providers expect OGG/Opus."""

    instance_ref: str
    recipient: str
    url: str | None = None
    data_base64: str | None = None
    mimetype: str = "audio/ogg; codecs=opus"
    client_message_id: str | None = None

    def __post_init__(self) -> None:
        _check_common(self.instance_ref, self.recipient, self.client_message_id)
        _check_source(self.url, self.data_base64)


@dataclass(frozen=True, slots=True, kw_only=True)
class SendReactionRequest:
    """An emoji reaction to `message_id` (the provider message id, as returned by a send or a webhook).

    `target_from_me` says whether the reacted-to message was sent by this instance; providers address
    such messages differently. An empty `emoji` removes the reaction.
    """

    instance_ref: str
    recipient: str
    message_id: str
    emoji: str
    target_from_me: bool
    client_message_id: str | None = None

    def __post_init__(self) -> None:
        _check_common(self.instance_ref, self.recipient, self.client_message_id)
        if not self.message_id:
            raise _invalid("invalid_request", "message_id is required")


@dataclass(frozen=True, slots=True)
class SentMessage:
    """What a provider accepted. `provider_message_id` correlates later delivery webhooks; it is empty
    only for a reaction when the provider does not return an id."""

    provider_message_id: str


class WhatsAppProvider(ABC):
    """Port to one WhatsApp HTTP API. Implementations are cheap objects sharing one HTTP session."""

    name: ClassVar[str]

    @abstractmethod
    async def send_text(self, request: SendTextRequest) -> SentMessage:
        """Send a text; raises ProviderError."""

    @abstractmethod
    async def send_media(self, request: SendMediaRequest) -> SentMessage:
        """Send an image, video or document; raises ProviderError."""

    @abstractmethod
    async def send_audio(self, request: SendAudioRequest) -> SentMessage:
        """Send a voice note; raises ProviderError."""

    @abstractmethod
    async def send_reaction(self, request: SendReactionRequest) -> SentMessage:
        """React to a message; raises ProviderError."""

    async def find_sent_message(self, request: LookupRequest) -> LookupResult:
        """Whether a send whose answer was lost left: FOUND (with its id), ABSENT (proof it never left, only
        where `capabilities_of(request.profile).miss_proves_absence` and the lookup searched where the
        message would be) or INCONCLUSIVE (a person must look).

        Raises only a TRANSIENT ProviderError, when the provider could not be asked at all (connection
        refused, timeout, 5xx); ask again later. Providers without a lookup answer INCONCLUSIVE.
        """
        return LookupResult.inconclusive("lookup_unsupported")
