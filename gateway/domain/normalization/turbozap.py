"""TurboZap (jonadableite/TurboZap-api, whatsmeow) webhooks.

Envelope `{event, instance_id, instance, timestamp, data}` (times are RFC 3339 strings), the event also
in the `X-Webhook-Event` header; no event id. A target with `use_base64` posts the JSON base64-encoded
(text/plain, `X-Content-Transfer-Encoding: base64`). The mapping (table in docs/providers.md):
- `messages.update` and `message.ack`: `data.status` delivered → MESSAGE_DELIVERED, read / played →
  MESSAGE_READ, sent → MESSAGE_SENT. Every receipt comes once under each name; both give the same event,
  hence the same dedup key (provider + instance + kind + message id). A `messages.update` without a
  status (an edit) and status `unknown` are ignored.
- `send.message` → MESSAGE_SENT (whatsmeow returned the server's ack).
- `messages.upsert` (not fromMe) → MESSAGE_REPLIED when it quotes a message (`quoted_msg_id`), else
  MESSAGE_RECEIVED.
- `connection.update`: connected → CONNECTION_CONNECTED, disconnected → CONNECTION_DISCONNECTED,
  logged_out → CONNECTION_DISCONNECTED LOGGED_OUT (TurboZap reports no bans); `qrcode.updated` →
  QR_UPDATED.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.domain.events import ProviderEventKind
from gateway.domain.normalization.reading import (
    MalformedWebhook,
    NormalizedWebhook,
    Origin,
    flag,
    ignored,
    is_group_jid,
    jid,
    message_text,
    obj,
    parse_json_object,
    rfc3339,
    text,
)
from libs.seedwork.shared_kernel import ConnectionState, Provider

_STATUS_KINDS = {
    "sent": ProviderEventKind.MESSAGE_SENT,
    "delivered": ProviderEventKind.MESSAGE_DELIVERED,
    "read": ProviderEventKind.MESSAGE_READ,
    "played": ProviderEventKind.MESSAGE_READ,
}
_CONNECTION = {
    "connected": (ProviderEventKind.CONNECTION_CONNECTED, ConnectionState.CONNECTED),
    "disconnected": (ProviderEventKind.CONNECTION_DISCONNECTED, ConnectionState.DISCONNECTED),
    "logged_out": (ProviderEventKind.CONNECTION_DISCONNECTED, ConnectionState.LOGGED_OUT),
}


def normalize(
    provider: Provider, instance_id: str, headers: Mapping[str, str], body: bytes
) -> NormalizedWebhook:
    envelope = parse_json_object(_decoded(headers, body))
    event = text(envelope, "event") or headers.get("x-webhook-event", "")[:64]
    data = obj(envelope, "data")
    origin = Origin(
        provider=provider,
        instance_id=instance_id,
        provider_instance_ref=text(envelope, "instance") or text(envelope, "instance_id"),
    )
    sent_at = rfc3339(text(envelope, "timestamp"))
    if event in ("messages.update", "message.ack"):
        return _receipt(origin, event, data, sent_at)
    if event == "send.message":
        return _sent(origin, data, sent_at)
    if event == "messages.upsert":
        return _incoming(origin, data, sent_at)
    if event == "connection.update":
        status = text(data, "status")
        known = _CONNECTION.get(status)
        if known is None:
            return ignored(f"connection.update:{status}")
        kind, state = known
        return NormalizedWebhook(
            events=(origin.event(kind, sent_at, connection_reason=status, connection_state=state),)
        )
    if event == "qrcode.updated":
        return NormalizedWebhook(
            events=(
                origin.event(
                    ProviderEventKind.QR_UPDATED, sent_at, connection_state=ConnectionState.QR_REQUIRED
                ),
            )
        )
    return ignored(event)


def _decoded(headers: Mapping[str, str], body: bytes) -> bytes:
    """The JSON body; a target configured with `use_base64` posts it base64-encoded as text/plain."""
    if headers.get("x-content-transfer-encoding", "").strip().lower() != "base64":
        return body
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedWebhook("the body is not base64") from None


def _message_id(data: dict[str, Any], event: str) -> str:
    message_id = text(data, "message_id")
    if not message_id:
        raise MalformedWebhook(f"{event} without a message_id")
    return message_id


def _receipt(origin: Origin, event: str, data: dict[str, Any], sent_at: datetime | None) -> NormalizedWebhook:
    message_id = _message_id(data, event)
    status = text(data, "status")
    if not status:
        return ignored(f"{event}:edit")
    kind = _STATUS_KINDS.get(status)
    if kind is None:
        return ignored(f"{event}:{status}")
    chat = text(data, "from")
    return NormalizedWebhook(
        events=(
            origin.event(
                kind,
                rfc3339(text(data, "timestamp")) or sent_at,
                provider_message_id=message_id,
                remote_jid=jid(chat),
                from_me=True,
                is_group=is_group_jid(chat),
            ),
        )
    )


def _sent(origin: Origin, data: dict[str, Any], sent_at: datetime | None) -> NormalizedWebhook:
    message_id = _message_id(data, "send.message")
    chat = text(data, "to")
    return NormalizedWebhook(
        events=(
            origin.event(
                ProviderEventKind.MESSAGE_SENT,
                rfc3339(text(data, "timestamp")) or sent_at,
                provider_message_id=message_id,
                remote_jid=jid(chat),
                from_me=True,
                is_group=is_group_jid(chat),
            ),
        )
    )


def _incoming(origin: Origin, data: dict[str, Any], sent_at: datetime | None) -> NormalizedWebhook:
    message_id = _message_id(data, "messages.upsert")
    if flag(data, "fromMe"):
        return ignored("messages.upsert:from_me")
    group = flag(data, "is_group")
    # `to` is whatsmeow's Info.Chat (the group, or the contact in a one-to-one chat); `from` the sender.
    chat = text(data, "to") if group else text(data, "from") or text(data, "to")
    reply_to = text(data, "quoted_msg_id")
    return NormalizedWebhook(
        events=(
            origin.event(
                ProviderEventKind.MESSAGE_REPLIED if reply_to else ProviderEventKind.MESSAGE_RECEIVED,
                rfc3339(text(data, "timestamp")) or sent_at,
                provider_message_id=message_id,
                remote_jid=jid(chat),
                is_group=group or is_group_jid(chat),
                reply_to_provider_message_id=reply_to,
                text=message_text(data, "content") or message_text(data, "caption"),
                media_url=text(data, "media_url", limit=4096),
            ),
        )
    )
