"""What receiving a webhook and relaying live intent changes need from the outside, as protocols (adapters
in gateway/infrastructure and gateway/entrypoints)."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gateway.domain.events import ProviderEvent

# What normalizing yields and its error are the domain's (the normalizers are pure): named here for callers.
from gateway.domain.normalization import MalformedWebhook, NormalizedWebhook
from libs.seedwork.shared_kernel import Provider

__all__ = [
    "ChangeFrame",
    "EventSink",
    "FrameSink",
    "IntentChangeFeed",
    "MalformedWebhook",
    "NormalizedWebhook",
    "SignatureRejected",
    "WatchEnd",
    "WatchEnded",
    "WatchIntents",
    "WatcherLeft",
    "WebhookNormalizer",
    "WebhookVerifier",
]


class SignatureRejected(Exception):
    """The webhook is not proven to come from the instance's provider: answered 401, never parsed.
    `cause` is a short label for the metric (missing, mismatch, expired, malformed, algorithm)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class WebhookVerifier(Protocol):
    def verify(
        self, provider: Provider, instance_id: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> None:
        """Return if the body was signed with the instance's webhook secret (constant-time comparison),
        else raise SignatureRejected. `headers` has lower-case names."""
        ...


class WebhookNormalizer(Protocol):
    def normalize(
        self, provider: Provider, instance_id: str, headers: Mapping[str, str], body: bytes
    ) -> NormalizedWebhook:
        """The body's canonical events; raises MalformedWebhook for a body that does not parse."""
        ...


class EventSink(Protocol):
    async def publish(self, events: Sequence[ProviderEvent]) -> list[bool]:
        """Publish every event durably (returns once JetStream acknowledged each one), with its dedup key
        as the message id; for each, True when JetStream already had it. Raises when NATS cannot take
        them (the webhook is then answered 503 and the provider retries)."""
        ...


# --- Live intent changes (/v1/realtime) -----------------------------------------------------------------


@dataclass(frozen=True)
class WatchIntents:
    """One watcher's request: its own credential (forwarded, never logged, never in a repr) and what it
    follows. The organization is the credential's own."""

    credential: str = field(repr=False)
    intent_id: str = ""
    campaign_id: str = ""
    after_position: str = ""  # "" = from now on


@dataclass(frozen=True)
class ChangeFrame:
    """One change as the watcher receives it (`text`), and its position in the organization's changes."""

    position: str
    text: str


class WatchEnd(enum.Enum):
    """Why a watch ended."""

    UNAUTHENTICATED = "unauthenticated"  # no credential, or one that proves no one
    FORBIDDEN = "forbidden"  # the credential may not watch (role, organization)
    INVALID_ARGUMENT = "invalid argument"  # what it asked is malformed (detail: the fields)
    POSITION_TOO_OLD = "position too old"  # older than the changes still kept
    TOO_SLOW = "too slow"  # the watcher fell behind what is held for it
    UNAVAILABLE = "unavailable"  # the feed cannot be reached right now
    ENDED = "ended"  # the feed ended the stream (its lifetime ran out)
    GOING_AWAY = "going away"  # this process is shutting down
    WATCHER_LEFT = "watcher left"
    INTERNAL = "internal"


class WatchEnded(Exception):
    """The feed ended the watch: `end` says why, `detail` is safe to show the watcher."""

    def __init__(self, end: WatchEnd, detail: str = "") -> None:
        super().__init__(end.value)
        self.end = end
        self.detail = detail


class WatcherLeft(Exception):
    """Raised by a FrameSink whose watcher has gone."""


class IntentChangeFeed(Protocol):
    def watch(self, request: WatchIntents) -> AsyncIterator[ChangeFrame]:
        """The organization's changes after `request.after_position`, in order, as they happen; read only
        as fast as the caller iterates. Ends by raising WatchEnded; closing the iterator ends the watch."""
        ...


class FrameSink(Protocol):
    async def send(self, text: str) -> None:
        """Hand one frame to the watcher; returns once it is taken (waits while the watcher does not read).
        Raises WatcherLeft when the watcher has gone."""
        ...
