"""WAHA (devlikeapro/waha) webhooks, which the provider simulator speaks too.

Envelope `{id: "evt_<ulid>", timestamp (ms), event, session, me, payload, engine, environment}`. The
mapping (docs/providers.md has the table and its sources):
- `message.ack` / `message.ack.group` about our message (fromMe): ack -1 ERROR → MESSAGE_FAILED,
  1 SERVER → MESSAGE_SENT, 2 DEVICE → MESSAGE_DELIVERED, 3 READ / 4 PLAYED → MESSAGE_READ; 0 PENDING and
  acks of a contact's message (our own read) are ignored. An ERROR ack's `error.code` (NOWEB, from
  Baileys' `messageStubParameters[0]`) is the failure's error_code; 463 also restricts the instance
  (REACHOUT_TIMELOCK, until `error.until`). Older WAHA sends the ERROR ack without `error`: error_code "".
- `message` (not fromMe) → MESSAGE_REPLIED when it quotes a message (`replyTo.id`), else MESSAGE_RECEIVED.
  `message.any` is ignored: it repeats `message` (and our own sends) under other event ids.
- `session.status`: WORKING → CONNECTION_CONNECTED, plus REACHOUT_TIMELOCKED while the status's
  `data.reachoutTimelock` (or `me.reachoutTimelock`) is active (end in unix seconds), or
  REACHOUT_TIMELOCK_LIFTED when it is there and not active (WAHA sends it only after an active one);
  SCAN_QR_CODE → QR_UPDATED; STOPPED → CONNECTION_DISCONNECTED; FAILED → CONNECTION_ERROR (also how a
  blocked account shows: Reputation decides); STARTING ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.domain.events import ProviderEventKind, Restriction
from gateway.domain.normalization.reading import (
    ACK_ERROR_RESTRICTIONS,
    MalformedWebhook,
    NormalizedWebhook,
    Origin,
    epoch_millis,
    epoch_seconds,
    error_code,
    flag,
    ignored,
    integer,
    is_group_jid,
    jid,
    message_text,
    obj,
    parse_json_object,
    rfc3339,
    text,
)
from libs.seedwork.shared_kernel import ConnectionState, Provider

_ACK_KINDS = {
    -1: ProviderEventKind.MESSAGE_FAILED,
    1: ProviderEventKind.MESSAGE_SENT,
    2: ProviderEventKind.MESSAGE_DELIVERED,
    3: ProviderEventKind.MESSAGE_READ,
    4: ProviderEventKind.MESSAGE_READ,
}
_ACK_NAMES = {"ERROR": -1, "PENDING": 0, "SERVER": 1, "DEVICE": 2, "READ": 3, "PLAYED": 4}


def normalize(
    provider: Provider, instance_id: str, headers: Mapping[str, str], body: bytes
) -> NormalizedWebhook:
    envelope = parse_json_object(body)
    event = text(envelope, "event")
    payload = obj(envelope, "payload")
    origin = Origin(
        provider=provider,
        instance_id=instance_id,
        provider_instance_ref=text(envelope, "session"),
        provider_event_id=text(envelope, "id"),
    )
    if event in ("message.ack", "message.ack.group"):
        return _ack(origin, envelope, payload, event)
    if event == "message":
        return _incoming(origin, envelope, payload)
    if event == "session.status":
        return _session_status(origin, envelope, payload)
    return ignored(event)


def _ack(origin: Origin, envelope: dict[str, Any], payload: dict[str, Any], event: str) -> NormalizedWebhook:
    message_id = text(payload, "id")
    if not message_id:
        raise MalformedWebhook(f"{event} without a message id")
    if not flag(payload, "fromMe"):
        return ignored(f"{event}:not_from_me")
    ack = integer(payload, "ack")
    if ack is None:
        ack = _ACK_NAMES.get(text(payload, "ackName"))
    kind = _ACK_KINDS.get(ack) if ack is not None else None
    if kind is None:
        return ignored(f"{event}:{text(payload, 'ackName') or ack}")
    chat = text(payload, "from")
    code, restriction, until = (
        _failure(payload) if kind is ProviderEventKind.MESSAGE_FAILED else ("", None, None)
    )
    return NormalizedWebhook(
        events=(
            origin.event(
                kind,
                epoch_millis(integer(envelope, "timestamp")),
                provider_message_id=message_id,
                remote_jid=jid(chat),
                from_me=True,
                is_group=event == "message.ack.group" or is_group_jid(chat),
                error_code=code,
                restriction=restriction,
                timelock_until=until,
            ),
        )
    )


def _failure(payload: dict[str, Any]) -> tuple[str, Restriction | None, datetime | None]:
    """The error code of an ERROR ack, the restriction it means and until when.

    WAHA NOWEB's `WAMessageAckError` `{code, blocked, reason, until, enforcementType}`
    (devlikeapro/waha@cb6e7ad5e2459689aaaf10ad3d3e4df209c6988d src/core/engines/noweb/restriction.ts
    `buildAckError`, src/structures/webhooks.dto.ts): code is Baileys' `messageStubParameters[0]` (null
    when the ack had none); `until` (ISO 8601) only for 463."""
    error = obj(payload, "error")
    code = error_code(error.get("code"))
    restriction = ACK_ERROR_RESTRICTIONS.get(code)
    until = rfc3339(text(error, "until", limit=64)) if restriction is not None else None
    return code, restriction, until


def _incoming(origin: Origin, envelope: dict[str, Any], payload: dict[str, Any]) -> NormalizedWebhook:
    message_id = text(payload, "id")
    if not message_id:
        raise MalformedWebhook("message without a message id")
    if flag(payload, "fromMe"):
        return ignored("message:from_me")
    chat = text(payload, "from")
    reply_to = text(obj(payload, "replyTo"), "id")
    occurred_at = epoch_seconds(integer(payload, "timestamp")) or epoch_millis(integer(envelope, "timestamp"))
    media = obj(payload, "media")
    return NormalizedWebhook(
        events=(
            origin.event(
                ProviderEventKind.MESSAGE_REPLIED if reply_to else ProviderEventKind.MESSAGE_RECEIVED,
                occurred_at,
                provider_message_id=message_id,
                remote_jid=jid(chat),
                is_group=is_group_jid(chat),
                reply_to_provider_message_id=reply_to,
                text=message_text(payload, "body"),
                media_url=text(media, "url", limit=4096),
            ),
        )
    )


def _session_status(origin: Origin, envelope: dict[str, Any], payload: dict[str, Any]) -> NormalizedWebhook:
    status = text(payload, "status")
    at = epoch_millis(integer(envelope, "timestamp"))
    if status == "WORKING":
        events = [
            origin.event(
                ProviderEventKind.CONNECTION_CONNECTED,
                at,
                connection_reason=status,
                connection_state=ConnectionState.CONNECTED,
            )
        ]
        timelock = _reachout_timelock(envelope, payload)
        if timelock is not None and flag(timelock, "isActive"):
            events.append(
                origin.event(
                    ProviderEventKind.REACHOUT_TIMELOCKED,
                    at,
                    connection_reason=text(timelock, "enforcementType") or "reachoutTimelock",
                    connection_state=ConnectionState.CONNECTED,
                    timelock_until=epoch_seconds(integer(timelock, "timeEnforcementEnds")),
                )
            )
        elif timelock is not None:  # seen before and no longer active
            events.append(
                origin.event(
                    ProviderEventKind.REACHOUT_TIMELOCK_LIFTED,
                    at,
                    connection_reason=text(timelock, "enforcementType") or "reachoutTimelock",
                    connection_state=ConnectionState.CONNECTED,
                )
            )
        return NormalizedWebhook(events=tuple(events))
    if status == "SCAN_QR_CODE":
        kind, state = ProviderEventKind.QR_UPDATED, ConnectionState.QR_REQUIRED
    elif status == "STOPPED":
        kind, state = ProviderEventKind.CONNECTION_DISCONNECTED, ConnectionState.DISCONNECTED
    elif status == "FAILED":
        kind, state = ProviderEventKind.CONNECTION_ERROR, ConnectionState.DISCONNECTED
    else:
        return ignored(f"session.status:{status}")
    return NormalizedWebhook(
        events=(origin.event(kind, at, connection_reason=status, connection_state=state),)
    )


def _reachout_timelock(envelope: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any] | None:
    """The time-lock a WORKING status carries: `payload.data.reachoutTimelock` (WAHA re-issues WORKING with
    it whenever the time-lock changes), else `me.reachoutTimelock` of the envelope or the payload. WAHA
    keeps it null until an enforcement was seen, so an inactive one is a lifted one
    (devlikeapro/waha@774072c78ccfae269692861e4f8d98061a81e8d0 src/core/abc/ReachoutTimelockTracker.ts,
    session.abc.test.ts; `MeInfo.reachoutTimelock` in src/structures/sessions.dto.ts)."""
    for holder in (obj(payload, "data"), obj(envelope, "me"), obj(payload, "me")):
        if isinstance(holder.get("reachoutTimelock"), dict):
            return obj(holder, "reachoutTimelock")
    return None
