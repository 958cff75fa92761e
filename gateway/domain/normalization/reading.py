"""Reading untrusted webhook bodies without ever raising anything but MalformedWebhook.

A verified body can still be any JSON: every accessor here checks the type it reads and answers an empty
value otherwise, so a normalizer decides "ignore" or "malformed" instead of failing with a TypeError.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.domain.events import ProviderEvent, ProviderEventKind, Restriction
from libs.seedwork.shared_kernel import ConnectionState, Provider

MAX_ID_CHARS = 256  # ids, jids, codes: anything longer is not a real one
MAX_TEXT_CHARS = 65_536  # WhatsApp's own limit for a text message
MAX_LABEL_CHARS = 64
# Epoch bounds a datetime can hold and a provider can mean: after 1970, before year 10000.
_MAX_EPOCH_SECONDS = 253_402_300_799
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._:=-]")


class MalformedWebhook(Exception):
    """A verified body that is not the JSON (or form) the provider sends: answered 400."""


@dataclass(frozen=True)
class NormalizedWebhook:
    """The canonical events of one webhook, and the provider's event types it carried that WhatLead does
    not use (answered 2xx and counted, never an error)."""

    events: tuple[ProviderEvent, ...] = ()
    ignored_types: tuple[str, ...] = ()


def ignored(label: str) -> NormalizedWebhook:
    return NormalizedWebhook(ignored_types=(ignored_label(label),))


def ignored_label(label: str) -> str:
    """A bounded, metric-safe rendering of a provider's event type (it becomes a counter label)."""
    safe = _LABEL_UNSAFE.sub("_", label[:MAX_LABEL_CHARS])
    return safe or "unknown"


def parse_json_object(body: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError and over-long integers are ValueErrors
        raise MalformedWebhook("the body is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedWebhook("the body is not a JSON object")
    return value


def obj(value: object, key: str) -> dict[str, Any]:
    child = value.get(key) if isinstance(value, dict) else None
    return child if isinstance(child, dict) else {}


def items(value: object, key: str) -> list[Any]:
    child = value.get(key) if isinstance(value, dict) else None
    return child if isinstance(child, list) else []


def text(value: object, key: str, limit: int = MAX_ID_CHARS) -> str:
    """The string at `key`, or "" when absent, not a string or longer than `limit` (an id that long is
    not an id); free text is cut to `limit` instead."""
    child = value.get(key) if isinstance(value, dict) else None
    if not isinstance(child, str):
        return ""
    if limit == MAX_TEXT_CHARS:
        return child[:limit]
    return child if len(child) <= limit else ""


def message_text(value: object, key: str) -> str:
    return text(value, key, MAX_TEXT_CHARS)


def flag(value: object, key: str) -> bool:
    return isinstance(value, dict) and value.get(key) is True


def integer(value: object, key: str) -> int | None:
    """An integer at `key`: a JSON integer, an integral finite float, or a decimal string (some providers
    quote numbers); None otherwise. Booleans are not integers here."""
    child = value.get(key) if isinstance(value, dict) else None
    return as_integer(child)


def as_integer(child: object) -> int | None:
    if isinstance(child, bool):
        return None
    if isinstance(child, int):
        return child
    if isinstance(child, float):
        return int(child) if math.isfinite(child) and child.is_integer() else None
    if isinstance(child, str) and 0 < len(child) <= 20 and child.lstrip("-").isdigit():
        return int(child)
    return None


def epoch_seconds(seconds: int | None) -> datetime | None:
    if seconds is None or not 0 < seconds <= _MAX_EPOCH_SECONDS:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)


def epoch_millis(millis: int | None) -> datetime | None:
    if millis is None or not 0 < millis <= _MAX_EPOCH_SECONDS * 1000:
        return None
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def rfc3339(value: str) -> datetime | None:
    """An RFC 3339 time with its offset, in UTC; None for anything else, a time without an offset (it
    would be guessed) and Go's zero time (year 1, what an unset time.Time marshals to)."""
    if not 0 < len(value) <= 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.year < 1971:
        return None
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def jid(raw: str) -> str:
    """The other party's JID in one spelling for every provider: WAHA's `@c.us` is WhatsApp's
    `@s.whatsapp.net`; a device suffix (`:12`) names a device, not the party. `@lid` and group ids are
    kept as they are (an `@lid` cannot be turned into a phone here)."""
    user, at, server = raw.partition("@")
    if not at:
        return raw
    if server == "c.us":
        server = "s.whatsapp.net"
    if server in ("s.whatsapp.net", "lid"):
        user = user.split(":", 1)[0]
    return f"{user}@{server}"


def is_group_jid(value: str) -> bool:
    return value.endswith("@g.us")


@dataclass(frozen=True)
class Origin:
    """What every event of one webhook shares."""

    provider: Provider
    instance_id: str
    provider_instance_ref: str
    provider_event_id: str = ""

    def event(self, kind: ProviderEventKind, occurred_at: datetime | None, **fields: Any) -> ProviderEvent:
        return ProviderEvent(
            kind=kind,
            provider=self.provider,
            instance_id=self.instance_id,
            provider_instance_ref=self.provider_instance_ref,
            provider_event_id=self.provider_event_id,
            occurred_at=occurred_at,
            **fields,
        )


# WhatsApp's close codes that mean a ban, as Baileys (Evolution) and whatsmeow (wuzapi) pass them on:
# 402 temporary ban, 403 locked (whatsmeow's MainDeviceGone, "LOCKED" in WhatsApp Web: its owner can
# recover it), 406 banned ("BANNED" in WhatsApp Web).
BAN_CODES = {402: Restriction.TEMPORARY, 403: Restriction.TEMPORARY, 406: Restriction.PERMANENT}


def banned(origin: Origin, code: int) -> NormalizedWebhook:
    """The instance was banned with close code `code` (one of BAN_CODES)."""
    reason = str(code)
    return NormalizedWebhook(
        events=(
            origin.event(
                ProviderEventKind.INSTANCE_BANNED,
                None,
                ban_code=reason,
                restriction=BAN_CODES[code],
                connection_reason=reason,
                connection_state=ConnectionState.BANNED,
            ),
        )
    )


# WhatsApp's error codes in a message's ERROR ack that restrict the instance. 463 is the reach-out time-lock
# (Baileys src/Utils/decode-wa-message.ts SERVER_ERROR_CODES.MessageAccountRestriction, WhiskeySockets/
# Baileys@78e7e4e2cfcb1935629173427bc3292b95f61a95); the BAN_CODES close a connection, never reach an ack.
ACK_ERROR_RESTRICTIONS = {"463": Restriction.REACHOUT_TIMELOCK}
_MAX_ERROR_CODE_DIGITS = 6


def error_code(raw: object) -> str:
    """A WhatsApp error code as the providers pass it on (Baileys' ack `error` attribute, a numeric
    string; some JSON renders it as a number), or "" for anything else."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        raw = str(raw)
    if isinstance(raw, str) and 0 < len(raw) <= _MAX_ERROR_CODE_DIGITS and raw.isascii() and raw.isdigit():
        return raw
    return ""


# The message kinds of WhatsApp's protobuf (as Baileys and whatsmeow render it to JSON) that carry media.
MEDIA_MESSAGES = ("imageMessage", "videoMessage", "documentMessage", "audioMessage", "stickerMessage")


def whatsapp_content(
    message: dict[str, Any], url_keys: tuple[str, ...] = ("url",)
) -> tuple[str, str, dict[str, Any]]:
    """The text (or caption), the media reference and the quote context of a WhatsApp message as Evolution
    (Baileys) and wuzapi (whatsmeow) post it; `url_keys`: where the media's URL may be, in order."""
    if isinstance(message.get("conversation"), str):
        return message_text(message, "conversation"), "", {}
    extended = obj(message, "extendedTextMessage")
    if extended:
        return message_text(extended, "text"), "", obj(extended, "contextInfo")
    for name in MEDIA_MESSAGES:
        media = obj(message, name)
        if media:
            url = next((found for key in url_keys if (found := text(media, key, limit=4096))), "")
            return message_text(media, "caption"), url, obj(media, "contextInfo")
    return "", "", {}
