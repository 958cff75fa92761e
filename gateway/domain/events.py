"""What a provider reported, in WhatLead's words: one canonical event per fact a webhook carries.

The same for every provider (docs/providers.md, `ProviderEventReceived` in
protos/whatlead/events/v1/provider_events.proto); each provider's normalizer turns its own shapes into
these, and nothing downstream reads a provider's payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from libs.seedwork.shared_kernel import ConnectionState, Provider


class ProviderEventKind(StrEnum):
    """The canonical kinds; the names match `ProviderEventType` without its prefix."""

    MESSAGE_SENT = "MESSAGE_SENT"  # the server's ack of a message the instance sent
    MESSAGE_DELIVERED = "MESSAGE_DELIVERED"
    MESSAGE_READ = "MESSAGE_READ"  # read or played
    MESSAGE_REPLIED = "MESSAGE_REPLIED"  # an incoming message quoting one of ours
    MESSAGE_RECEIVED = "MESSAGE_RECEIVED"  # any other incoming message
    MESSAGE_FAILED = "MESSAGE_FAILED"
    CONNECTION_CONNECTED = "CONNECTION_CONNECTED"
    CONNECTION_DISCONNECTED = "CONNECTION_DISCONNECTED"
    CONNECTION_ERROR = "CONNECTION_ERROR"
    INSTANCE_BANNED = "INSTANCE_BANNED"  # see ban_code, restriction
    REACHOUT_TIMELOCKED = "REACHOUT_TIMELOCKED"  # see timelock_until
    REACHOUT_TIMELOCK_LIFTED = "REACHOUT_TIMELOCK_LIFTED"  # a time-lock the provider had reported ended
    QR_UPDATED = "QR_UPDATED"  # a new QR code waits to be scanned (the code itself never travels)


class Restriction(StrEnum):
    """What restricts the instance, as `RestrictionKind` names it: a ban and how lasting it is, or the
    reach-out time-lock a failed message's error 463 reports."""

    TEMPORARY = "TEMPORARY"
    PERMANENT = "PERMANENT"
    REACHOUT_TIMELOCK = "REACHOUT_TIMELOCK"


@dataclass(frozen=True, kw_only=True)
class ProviderEvent:
    """One canonical fact from one webhook. `instance_id` is ours (from the webhook's URL, which the
    signature proved); `provider_instance_ref` is the provider's name for it (session, instance)."""

    kind: ProviderEventKind
    provider: Provider
    instance_id: str
    provider_instance_ref: str
    occurred_at: datetime | None
    provider_event_id: str = ""  # the provider's own id of the webhook, when it has one
    provider_message_id: str = ""  # message events: what receipts are matched on, never the chat
    remote_jid: str = ""  # the other party, which may be an @lid rather than a phone
    from_me: bool = False
    is_group: bool = False
    reply_to_provider_message_id: str = ""
    text: str = ""  # incoming messages: their text or caption
    media_url: str = ""  # incoming messages: the provider's reference to their media
    ban_code: str = ""
    error_code: str = ""  # MESSAGE_FAILED: WhatsApp's error code when the provider passes it on ("463")
    restriction: Restriction | None = None
    timelock_until: datetime | None = None
    connection_reason: str = ""
    connection_state: ConnectionState | None = None

    @property
    def dedup_key(self) -> str:
        """Equal for the same fact however often the provider delivers it: its own event id when it has
        one; else, for a message, provider + instance + message id + kind (receipts come without ids, and
        some providers send each twice); else the kind, reason and time of the change."""
        head = f"{self.provider.value}:{self.instance_id}:{self.kind.value}"
        if self.provider_event_id:
            return f"{head}:event:{self.provider_event_id}"
        if self.provider_message_id:
            return f"{head}:message:{self.provider_message_id}"
        at = self.occurred_at.isoformat() if self.occurred_at else ""
        return f"{head}:change:{self.connection_reason}:{at}"
