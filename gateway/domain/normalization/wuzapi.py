"""wuzapi (asternic/wuzapi, whatsmeow) webhooks.

Two encodings of one event map: JSON mode (`{type, event, state?, instanceName, userID}`, keys sorted)
and the default form mode (`application/x-www-form-urlencoded`: `jsonData` = that map as JSON,
`instanceName`, `userID`). `event` is whatsmeow's event struct as Go's encoding/json writes it (times
RFC 3339, durations in nanoseconds); no event id. The mapping (table in docs/providers.md):
- `ReadReceipt`: state Delivered → MESSAGE_DELIVERED, Read → MESSAGE_READ, one per `event.MessageIDs[]`;
  ReadSelf (our own read) ignored.
- `Message` (not `Info.IsFromMe`) → MESSAGE_REPLIED when it quotes a message (`contextInfo.stanzaID`),
  else MESSAGE_RECEIVED.
- `Connected` → CONNECTION_CONNECTED, `Disconnected` → CONNECTION_DISCONNECTED, `KeepAliveTimeout`,
  `ConnectFailure`, `StreamError`, `ClientOutdated` → CONNECTION_ERROR, `QR` → QR_UPDATED.
- `LoggedOut`: `event.Reason` 406 → INSTANCE_BANNED PERMANENT, 403 → INSTANCE_BANNED TEMPORARY (locked),
  else CONNECTION_DISCONNECTED LOGGED_OUT; a `ConnectFailure` with 402/403/406 likewise.
- `TemporaryBan` → INSTANCE_BANNED TEMPORARY with `event.Code`; `event.Expire` is a duration in
  nanoseconds, carried as `expire_s=<seconds>` in connection_reason (the body has no time to anchor it).
wuzapi never reports sent messages, played receipts or failed acks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from gateway.domain.events import ProviderEventKind, Restriction
from gateway.domain.normalization.reading import (
    BAN_CODES,
    MAX_ID_CHARS,
    MalformedWebhook,
    NormalizedWebhook,
    Origin,
    as_integer,
    banned,
    flag,
    ignored,
    integer,
    is_group_jid,
    items,
    jid,
    obj,
    parse_json_object,
    rfc3339,
    text,
    whatsapp_content,
)
from libs.seedwork.shared_kernel import ConnectionState, Provider

_RECEIPT_KINDS = {"Delivered": ProviderEventKind.MESSAGE_DELIVERED, "Read": ProviderEventKind.MESSAGE_READ}
# A ConnectFailure with any of the BAN_CODES (whatsmeow's ConnectFailureReason) is a ban; a LoggedOut
# only with 403 or 406 (402 is not a logout reason).
_LOGOUT_BANS = frozenset({403, 406})
_CONNECTION_ERRORS = ("KeepAliveTimeout", "ConnectFailure", "StreamError", "ClientOutdated")
_NANOS_PER_SECOND = 1_000_000_000


def normalize(
    provider: Provider, instance_id: str, headers: Mapping[str, str], body: bytes
) -> NormalizedWebhook:
    envelope = _decode(headers, body)
    kind = text(envelope, "type")
    event = obj(envelope, "event")
    origin = Origin(
        provider=provider,
        instance_id=instance_id,
        provider_instance_ref=text(envelope, "instanceName") or text(envelope, "userID"),
    )
    if kind == "ReadReceipt":
        return _receipt(origin, text(envelope, "state"), event)
    if kind == "Message":
        return _incoming(origin, envelope, event)
    if kind == "Connected":
        return _connection(origin, ProviderEventKind.CONNECTION_CONNECTED, kind, ConnectionState.CONNECTED)
    if kind == "Disconnected":
        return _connection(
            origin, ProviderEventKind.CONNECTION_DISCONNECTED, kind, ConnectionState.DISCONNECTED
        )
    code = integer(event, "Reason")
    if kind == "ConnectFailure" and code is not None and code in BAN_CODES:
        return banned(origin, code)
    if kind in _CONNECTION_ERRORS:
        reason = f"{kind}:{code}" if code is not None else kind
        return _connection(origin, ProviderEventKind.CONNECTION_ERROR, reason, ConnectionState.DISCONNECTED)
    if kind == "LoggedOut":
        return _logged_out(origin, event)
    if kind == "TemporaryBan":
        return _temporary_ban(origin, event)
    if kind == "QR":
        return _connection(origin, ProviderEventKind.QR_UPDATED, kind, ConnectionState.QR_REQUIRED)
    return ignored(kind)


def _decode(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The event map, from JSON mode or from form mode's `jsonData` (with the form's instance fields)."""
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded" and body.lstrip()[:1] in (b"{", b""):
        return parse_json_object(body)
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        raise MalformedWebhook("the body is neither JSON nor a form") from None
    data = fields.get("jsonData")
    if not data:
        raise MalformedWebhook("the form has no jsonData")
    envelope = parse_json_object(data[0])
    for name in ("instanceName", "userID"):
        value = fields.get(name)
        if value and not text(envelope, name) and len(value[0]) <= MAX_ID_CHARS:
            envelope[name] = value[0]
    return envelope


def _receipt(origin: Origin, state: str, event: dict[str, Any]) -> NormalizedWebhook:
    kind = _RECEIPT_KINDS.get(state)
    if kind is None:
        return ignored(f"ReadReceipt:{state}")
    chat = text(event, "Chat") or text(event, "Sender")
    at = rfc3339(text(event, "Timestamp"))
    ids = [
        value
        for value in items(event, "MessageIDs")
        if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS
    ]
    if not ids:
        raise MalformedWebhook("ReadReceipt without MessageIDs")
    return NormalizedWebhook(
        events=tuple(
            origin.event(
                kind,
                at,
                provider_message_id=message_id,
                remote_jid=jid(chat),
                from_me=True,
                is_group=flag(event, "IsGroup") or is_group_jid(chat),
            )
            for message_id in dict.fromkeys(ids)
        )
    )


def _incoming(origin: Origin, envelope: dict[str, Any], event: dict[str, Any]) -> NormalizedWebhook:
    info = obj(event, "Info")
    message_id = text(info, "ID")
    if not message_id:
        raise MalformedWebhook("Message without Info.ID")
    if flag(info, "IsFromMe"):
        return ignored("Message:from_me")
    chat = text(info, "Chat") or text(info, "Sender")
    body, media_url, context = whatsapp_content(obj(event, "Message"), url_keys=("URL", "url"))
    reply_to = text(context, "stanzaID") or text(context, "stanzaId")
    stored = text(obj(envelope, "s3"), "url", limit=4096)  # wuzapi's copy of the media, when S3 is on
    return NormalizedWebhook(
        events=(
            origin.event(
                ProviderEventKind.MESSAGE_REPLIED if reply_to else ProviderEventKind.MESSAGE_RECEIVED,
                rfc3339(text(info, "Timestamp")),
                provider_message_id=message_id,
                remote_jid=jid(chat),
                is_group=flag(info, "IsGroup") or is_group_jid(chat),
                reply_to_provider_message_id=reply_to,
                text=body,
                media_url=stored or media_url,
            ),
        )
    )


def _connection(
    origin: Origin, kind: ProviderEventKind, reason: str, state: ConnectionState
) -> NormalizedWebhook:
    return NormalizedWebhook(
        events=(origin.event(kind, None, connection_reason=reason, connection_state=state),)
    )


def _logged_out(origin: Origin, event: dict[str, Any]) -> NormalizedWebhook:
    code = integer(event, "Reason")
    if code is not None and code in _LOGOUT_BANS:
        return banned(origin, code)
    reason = str(code) if code is not None else "LoggedOut"
    return _connection(origin, ProviderEventKind.CONNECTION_DISCONNECTED, reason, ConnectionState.LOGGED_OUT)


def _temporary_ban(origin: Origin, event: dict[str, Any]) -> NormalizedWebhook:
    code = as_integer(event.get("Code"))
    expire = integer(event, "Expire")
    reason = "TemporaryBan"
    if expire is not None and 0 <= expire < 10**20:
        reason = f"expire_s={expire // _NANOS_PER_SECOND}"
    return NormalizedWebhook(
        events=(
            origin.event(
                ProviderEventKind.INSTANCE_BANNED,
                None,
                ban_code=str(code) if code is not None else "TemporaryBan",
                restriction=Restriction.TEMPORARY,
                connection_reason=reason,
                connection_state=ConnectionState.BANNED,
            ),
        )
    )
