"""Evolution API (EvolutionAPI/evolution-api 2.3.6, Baileys) webhooks.

Envelope `{event, instance, data, destination, date_time, sender, server_url, apikey}`. `date_time` is
the server's local time labelled `Z` (`new Date(Date.now() - tzoffset).toISOString()`), so it is never
taken for a time: occurred_at is the message's own epoch `messageTimestamp` where the body has one, and
empty otherwise (the gateway stamps its receive time). With `webhookByEvents` Evolution appends the event
name to the URL; the body's `event` is what is read here. The mapping (table in docs/providers.md):
- `messages.update` about our message (fromMe): ERROR → MESSAGE_FAILED, SERVER_ACK → MESSAGE_SENT,
  DELIVERY_ACK → MESSAGE_DELIVERED, READ / PLAYED → MESSAGE_READ. Ignored: PENDING; DELETED (an edit or
  a deletion); any status with fromMe false (our own read of a contact's message). An ERROR has no error
  code: Baileys puts it in the update's `messageStubParameters` (a 463 too), and the handler's webhook
  body `{keyId, remoteJid, fromMe, participant, status, pollUpdates, instanceId}` leaves it out.
- `messages.upsert` (not fromMe) → MESSAGE_REPLIED when it quotes a message (`contextInfo.stanzaId`),
  else MESSAGE_RECEIVED.
- `connection.update`: open → CONNECTION_CONNECTED; close 402 → INSTANCE_BANNED TEMPORARY, 403 →
  INSTANCE_BANNED TEMPORARY (locked), 406 → INSTANCE_BANNED PERMANENT, 401 → CONNECTION_DISCONNECTED
  LOGGED_OUT, other codes → CONNECTION_DISCONNECTED; refused → CONNECTION_ERROR; connecting ignored.
- `qrcode.updated` with a code → QR_UPDATED (the code itself never travels).
- `status.instance` is ignored: it precedes the `connection.update` close that carries the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.domain.events import ProviderEventKind
from gateway.domain.normalization.reading import (
    BAN_CODES,
    MalformedWebhook,
    NormalizedWebhook,
    Origin,
    as_integer,
    banned,
    epoch_seconds,
    flag,
    ignored,
    is_group_jid,
    jid,
    obj,
    parse_json_object,
    text,
    whatsapp_content,
)
from libs.seedwork.shared_kernel import ConnectionState, Provider

_STATUS_KINDS = {
    "ERROR": ProviderEventKind.MESSAGE_FAILED,
    "SERVER_ACK": ProviderEventKind.MESSAGE_SENT,
    "DELIVERY_ACK": ProviderEventKind.MESSAGE_DELIVERED,
    "READ": ProviderEventKind.MESSAGE_READ,
    "PLAYED": ProviderEventKind.MESSAGE_READ,
}
# Evolution 2.3.6 does not reconnect after 401 (logged out) and the BAN_CODES
# (whatsapp.baileys.service.ts, connectionUpdate).
_LOGGED_OUT = 401
# Message types whose content carries a caption and a media reference.


def normalize(
    provider: Provider, instance_id: str, headers: Mapping[str, str], body: bytes
) -> NormalizedWebhook:
    envelope = parse_json_object(body)
    event = text(envelope, "event")
    data = obj(envelope, "data")
    origin = Origin(
        provider=provider, instance_id=instance_id, provider_instance_ref=text(envelope, "instance")
    )
    if event == "messages.update":
        return _status_update(origin, data)
    if event == "messages.upsert":
        return _incoming(origin, data)
    if event == "connection.update":
        return _connection(origin, data)
    if event == "qrcode.updated":
        if not obj(data, "qrcode"):
            return ignored("qrcode.updated:no_code")  # the QR limit notice; a `refused` close follows
        return NormalizedWebhook(
            events=(
                origin.event(
                    ProviderEventKind.QR_UPDATED, None, connection_state=ConnectionState.QR_REQUIRED
                ),
            )
        )
    return ignored(event)


def _status_update(origin: Origin, data: dict[str, Any]) -> NormalizedWebhook:
    message_id = text(data, "keyId")
    if not message_id:
        raise MalformedWebhook("messages.update without a keyId")
    status = text(data, "status")
    if not flag(data, "fromMe"):
        return ignored("messages.update:not_from_me")
    kind = _STATUS_KINDS.get(status)
    if kind is None:
        return ignored(f"messages.update:{status}")
    chat = text(data, "remoteJid")
    return NormalizedWebhook(
        events=(
            origin.event(
                kind,
                None,
                provider_message_id=message_id,
                remote_jid=jid(chat),
                from_me=True,
                is_group=is_group_jid(chat),
            ),
        )
    )


def _incoming(origin: Origin, data: dict[str, Any]) -> NormalizedWebhook:
    key = obj(data, "key")
    message_id = text(key, "id")
    if not message_id:
        raise MalformedWebhook("messages.upsert without a key.id")
    if flag(key, "fromMe"):
        return ignored("messages.upsert:from_me")
    chat = text(key, "remoteJid")
    message = obj(data, "message")
    body, media_url, context = whatsapp_content(message)
    context = context or obj(data, "contextInfo")
    reply_to = text(context, "stanzaId")
    return NormalizedWebhook(
        events=(
            origin.event(
                ProviderEventKind.MESSAGE_REPLIED if reply_to else ProviderEventKind.MESSAGE_RECEIVED,
                epoch_seconds(_epoch(data.get("messageTimestamp"))),
                provider_message_id=message_id,
                remote_jid=jid(chat),
                is_group=is_group_jid(chat),
                reply_to_provider_message_id=reply_to,
                text=body,
                media_url=text(message, "mediaUrl", limit=4096) or media_url,
            ),
        )
    )


def _epoch(value: object) -> int | None:
    """Baileys' `messageTimestamp`: a number, a numeric string, or a protobuf Long `{low, high}`."""
    if isinstance(value, dict):
        low, high = as_integer(value.get("low")), as_integer(value.get("high"))
        if low is None or high is None or not (0 <= high < 2**21 and -(2**31) <= low < 2**32):
            return None
        return high * 2**32 + (low % 2**32)
    return as_integer(value)


def _connection(origin: Origin, data: dict[str, Any]) -> NormalizedWebhook:
    state = text(data, "state")
    code = as_integer(data.get("statusReason"))
    reason = str(code) if code is not None else state
    if state == "open":
        kind, new_state = ProviderEventKind.CONNECTION_CONNECTED, ConnectionState.CONNECTED
    elif state == "refused":
        kind, new_state = ProviderEventKind.CONNECTION_ERROR, ConnectionState.DISCONNECTED
    elif state == "close" and code in BAN_CODES:
        return banned(origin, code)
    elif state == "close":
        kind = ProviderEventKind.CONNECTION_DISCONNECTED
        new_state = ConnectionState.LOGGED_OUT if code == _LOGGED_OUT else ConnectionState.DISCONNECTED
    else:
        return ignored(f"connection.update:{state}")
    return NormalizedWebhook(
        events=(origin.event(kind, None, connection_reason=reason, connection_state=new_state),)
    )
