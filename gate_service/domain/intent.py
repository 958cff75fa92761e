"""MessageIntent: the wish to send one message. Nothing leaves WhatLead without one.

Statuses and what moves an intent between them:

    PENDING / QUEUED --decide--> APPROVED | QUEUED | BLOCKED (terminal) | DROPPED (terminal)
    APPROVED --the Executor's sent report--> SENT
    APPROVED --the Executor's failure report--> FAILED (terminal)
    SENT     --a late failure report of the same job--> FAILED (WhatsApp refused the message after the
             provider accepted it: Baileys-based providers report a 463 as an ERROR ack afterwards)

A repeated report changes nothing, and a sent report arriving after the failure (reports may come out of
order) never brings a FAILED intent back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypedDict

from gate_service.domain.decision import DecisionReason, DecisionRecord
from gate_service.domain.events import (
    IntentApproved,
    IntentBlocked,
    IntentCreated,
    IntentDropped,
    IntentFailed,
    IntentQueued,
    IntentSent,
)
from libs.seedwork.aggregate import AggregateRoot
from libs.seedwork.errors import InvariantViolated, Violations, duration_text, with_article
from libs.seedwork.ids import new_id
from libs.seedwork.phone import is_group_jid, normalize_phone
from libs.seedwork.shared_kernel import MessageType, Provider, Purpose, TargetKind

MAX_TEXT = 4096  # WhatsApp's own limit on a text message
MAX_CAPTION = 1024
MAX_URL = 2048
MAX_IDEMPOTENCY_KEY = 128
MAX_CAMPAIGN_ID = 64
DEFAULT_VALIDITY = timedelta(hours=4)  # Twilio's WhatsApp default
MAX_VALIDITY = timedelta(hours=72)


class IntentStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    QUEUED = "QUEUED"
    BLOCKED = "BLOCKED"
    DROPPED = "DROPPED"
    SENT = "SENT"
    FAILED = "FAILED"


# SENT is final for decisions but not terminal: the message may still fail afterwards.
TERMINAL = frozenset({IntentStatus.BLOCKED, IntentStatus.DROPPED, IntentStatus.FAILED})
DECIDABLE = frozenset({IntentStatus.PENDING, IntentStatus.QUEUED})


class IntentOrigin(StrEnum):
    API = "API"
    CAMPAIGN = "CAMPAIGN"
    CHAT_MANUAL = "CHAT_MANUAL"
    WARMUP = "WARMUP"
    SCHEDULER = "SCHEDULER"


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    value: str  # PHONE: E.164 digits; GROUP: the group JID


@dataclass(frozen=True)
class TextPayload:
    text: str


@dataclass(frozen=True)
class AudioPayload:
    audio_url: str


@dataclass(frozen=True)
class MediaPayload:
    media_url: str
    mime_type: str
    caption: str = ""


@dataclass(frozen=True)
class ReactionPayload:
    emoji: str
    message_ref: str


Payload = TextPayload | AudioPayload | MediaPayload | ReactionPayload
PAYLOAD_OF: dict[MessageType, type] = {
    MessageType.TEXT: TextPayload,
    MessageType.AUDIO: AudioPayload,
    MessageType.MEDIA: MediaPayload,
    MessageType.REACTION: ReactionPayload,
}


@dataclass(frozen=True, kw_only=True)
class ApprovedInstance:
    """What the executor needs about the chosen instance, copied into the approved event."""

    instance_id: str
    provider: Provider
    provider_instance_ref: str


class _EventMeta(TypedDict):
    """What every event of the intent carries (DomainEvent's fields)."""

    event_id: str
    organization_id: str
    aggregate_id: str
    correlation_id: str
    occurred_at: datetime


# --- the aggregate ----------------------------------------------------------------------------------


@dataclass(kw_only=True, eq=False)
class MessageIntent(AggregateRoot):
    id: str
    organization_id: str
    target: Target
    type: MessageType
    purpose: Purpose
    origin: IntentOrigin
    campaign_id: str
    payload: Payload
    idempotency_key: str
    request_hash: str
    status: IntentStatus
    decided_by_instance_id: str | None
    status_reason: DecisionReason | None  # why not (yet) approved: what BLOCKED, QUEUED or DROPPED it
    queued_until: datetime | None
    not_before: datetime | None
    expires_at: datetime
    created_at: datetime
    decided_at: datetime | None
    decision: DecisionRecord | None = None
    # The client asked for this instance only (a warm-up pairing): no other is ever chosen for it.
    pinned_instance_id: str | None = None
    attempts: int = 0
    version: int = 1

    @classmethod
    def create(
        cls,
        *,
        organization_id: str,
        target_kind: TargetKind | None,
        target_value: str,
        type: MessageType | None,
        purpose: Purpose | None,
        origin: IntentOrigin | None,
        campaign_id: str,
        payload: Payload | None,
        idempotency_key: str,
        not_before: datetime | None,
        expires_at: datetime | None,
        now: datetime,
        default_validity: timedelta = DEFAULT_VALIDITY,
        max_validity: timedelta = MAX_VALIDITY,
        pinned_instance_id: str = "",
        actor: str = "",
    ) -> MessageIntent:
        """A PENDING intent, or InvalidArgument listing every problem of the request. `actor` (who asked
        for it) goes on IntentCreated only: the decisions that follow are the Gate's own."""
        v = Violations()
        v.check(bool(organization_id.strip()), "organization_id", "must not be empty")
        target = _target(v, target_kind, target_value)
        if type is None:
            v.add("type", "must be one of " + ", ".join(MessageType))
        else:
            _check_payload(v, type, payload)
        if purpose is None:
            v.add("purpose", "must be one of " + ", ".join(Purpose))
        if len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            v.add("idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY} characters")
        if len(campaign_id) > MAX_CAMPAIGN_ID:
            v.add("campaign_id", f"must be at most {MAX_CAMPAIGN_ID} characters")
        if not_before is not None and not_before > now + max_validity:
            # Nothing may be planned beyond the longest validity (and the dates computed from it stay
            # within the calendar).
            v.add("not_before", f"must be at most {duration_text(max_validity)} from now")
            not_before = None
        if expires_at is None:
            expires_at = (not_before if not_before and not_before > now else now) + default_validity
        else:
            v.check(expires_at > now, "expires_at", "must be in the future")
            if expires_at > now + max_validity + (
                max(not_before - now, timedelta()) if not_before else timedelta()
            ):
                longest = duration_text(max_validity)
                v.add("expires_at", f"must be at most {longest} after the intent may be sent")
        if not_before is not None:
            v.check(not_before < expires_at, "not_before", "must be before expires_at")
            v.check(
                purpose is not Purpose.WARMUP or not_before <= now, "not_before", "is not allowed for WARMUP"
            )
        v.raise_if_any()
        assert target is not None and type is not None and purpose is not None and payload is not None
        intent = cls(
            id=new_id(),
            organization_id=organization_id,
            target=target,
            type=type,
            purpose=purpose,
            origin=origin or IntentOrigin.API,
            campaign_id=campaign_id,
            payload=payload,
            idempotency_key=idempotency_key,
            request_hash="",
            status=IntentStatus.PENDING,
            decided_by_instance_id=None,
            status_reason=None,
            queued_until=None,
            not_before=not_before,
            expires_at=expires_at,
            created_at=now,
            decided_at=None,
            pinned_instance_id=pinned_instance_id or None,
        )
        intent.request_hash = request_fingerprint(intent, explicit_expiry=expires_at)
        intent.record(IntentCreated(**intent._meta(now), actor=actor, intent=intent.snapshot()))
        return intent

    # --- decisions ------------------------------------------------------------------------------------

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def approve(self, record: DecisionRecord, instance: ApprovedInstance) -> None:
        """APPROVED only with an instance, never once expired."""
        self._require_decidable()
        if not instance.instance_id:
            raise InvariantViolated("an intent is approved only with an instance")
        if self.is_expired(record.decided_at):
            raise InvariantViolated("an expired intent is dropped, never approved")
        self._decided(record, IntentStatus.APPROVED)
        self.decided_by_instance_id = instance.instance_id
        self.record(
            IntentApproved(
                **self._meta(record.decided_at), intent=self.snapshot(), instance=instance, decision=record
            )
        )

    def queue(self, record: DecisionRecord, until: datetime | None, reason: DecisionReason) -> None:
        """QUEUED only with a time to decide again, within the intent's validity."""
        self._require_decidable()
        if until is None:
            raise InvariantViolated("a queued intent needs queued_until")
        if until >= self.expires_at:
            raise InvariantViolated("queued past its validity: it must be dropped instead")
        self._decided(record, IntentStatus.QUEUED)
        self.queued_until = until
        self.status_reason = reason
        self.record(
            IntentQueued(**self._meta(record.decided_at), queued_until=until, reason=reason, decision=record)
        )

    def block(self, record: DecisionRecord, reason: DecisionReason | None) -> None:
        """BLOCKED only with a semantic reason."""
        self._require_decidable()
        if not isinstance(reason, DecisionReason) or reason is DecisionReason.EXPIRED:
            raise InvariantViolated("a blocked intent needs a semantic reason")
        self._decided(record, IntentStatus.BLOCKED)
        self.status_reason = reason
        self.record(IntentBlocked(**self._meta(record.decided_at), reason=reason, decision=record))

    def drop(self, record: DecisionRecord) -> None:
        """Past (or unable to go within) its validity."""
        self._require_decidable()
        self._decided(record, IntentStatus.DROPPED)
        self.status_reason = DecisionReason.EXPIRED
        self.record(
            IntentDropped(**self._meta(record.decided_at), reason=DecisionReason.EXPIRED, decision=record)
        )

    def mark_sent(
        self, *, instance_id: str, job_id: str, provider_message_id: str, sent_at: datetime
    ) -> bool:
        """SENT only from APPROVED; a repeat report is ignored (False), and so is one that arrives after
        the failure report (a failed intent never comes back)."""
        if self.status in (IntentStatus.SENT, IntentStatus.FAILED):
            return False
        if self.status is not IntentStatus.APPROVED:
            raise InvariantViolated(f"only an approved intent can be sent, this one is {self.status}")
        self.status = IntentStatus.SENT
        self.version += 1
        self.record(
            IntentSent(
                **self._meta(sent_at),
                instance_id=instance_id,
                job_id=job_id,
                provider_message_id=provider_message_id,
                sent_at=sent_at,
            )
        )
        return True

    def mark_failed(
        self,
        *,
        instance_id: str,
        job_id: str,
        error_class: str,
        error_code: str,
        error_message: str,
        failed_at: datetime,
    ) -> bool:
        """FAILED from APPROVED, or from SENT when the job that sent it reports a late failure; a repeat
        report is ignored (False). An intent has one job, on the instance it was approved for (the
        Executor keeps one job per intent), so a late failure must come from that instance."""
        if self.status is IntentStatus.FAILED:
            return False
        if self.status is IntentStatus.SENT and instance_id != self.decided_by_instance_id:
            raise InvariantViolated("a sent intent fails only by its own job's report, on its instance")
        if self.status not in (IntentStatus.APPROVED, IntentStatus.SENT):
            raise InvariantViolated(f"only an approved or sent intent can fail, this one is {self.status}")
        self.status = IntentStatus.FAILED
        self.version += 1
        self.record(
            IntentFailed(
                **self._meta(failed_at),
                instance_id=instance_id,
                job_id=job_id,
                error_class=error_class,
                error_code=error_code,
                error_message=error_message,
                failed_at=failed_at,
            )
        )
        return True

    def snapshot(self) -> MessageIntent:
        """A copy without pending events, safe to put inside an event."""
        return MessageIntent(**{name: getattr(self, name) for name in _FIELDS})

    def _require_decidable(self) -> None:
        if self.status not in DECIDABLE:
            raise InvariantViolated(
                f"intent {self.id} is {self.status}; only PENDING or QUEUED intents are decided"
            )

    def _decided(self, record: DecisionRecord, status: IntentStatus) -> None:
        if record.intent_id != self.id:
            raise InvariantViolated("decision record of another intent")
        self.status = status
        self.decision = record
        self.decided_at = record.decided_at
        self.attempts = record.attempt
        self.queued_until = None
        self.status_reason = None
        self.version += 1

    def _meta(self, now: datetime) -> _EventMeta:
        return {
            "event_id": new_id(),
            "organization_id": self.organization_id,
            "aggregate_id": self.id,
            "correlation_id": self.id,
            "occurred_at": now,
        }


_FIELDS = (
    "id",
    "organization_id",
    "target",
    "type",
    "purpose",
    "origin",
    "campaign_id",
    "payload",
    "idempotency_key",
    "request_hash",
    "status",
    "decided_by_instance_id",
    "status_reason",
    "queued_until",
    "not_before",
    "expires_at",
    "created_at",
    "decided_at",
    "decision",
    "pinned_instance_id",
    "attempts",
    "version",
)


def request_fingerprint(intent: MessageIntent, *, explicit_expiry: datetime | None) -> str:
    """What makes two submits with one idempotency key 'the same request' (the body, not the time)."""
    body = {
        "target": [intent.target.kind, intent.target.value],
        "type": intent.type,
        "purpose": intent.purpose,
        "origin": intent.origin,
        "campaign": intent.campaign_id,
        "payload": sorted(vars(intent.payload).items()),
        "not_before": intent.not_before.isoformat() if intent.not_before else None,
    }
    if intent.pinned_instance_id:  # only when set: the fingerprints of unpinned intents stay as they were
        body["pinned"] = intent.pinned_instance_id
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _target(v: Violations, kind: TargetKind | None, value: str) -> Target | None:
    if kind is TargetKind.PHONE:
        phone = normalize_phone(value)
        v.check(
            phone is not None,
            "target.value",
            "must be an E.164 number: country code and number, 8 to 15 digits",
        )
        return Target(TargetKind.PHONE, phone) if phone else None
    if kind is TargetKind.GROUP:
        v.check(
            is_group_jid(value.strip()), "target.value", "must be a group JID like 120363000000000000@g.us"
        )
        return Target(TargetKind.GROUP, value.strip())
    v.add("target.kind", "must be PHONE or GROUP")
    return None


def _check_payload(v: Violations, type: MessageType, payload: Payload | None) -> None:
    expected = PAYLOAD_OF[type]
    if not isinstance(payload, expected):
        v.add("payload", f"{with_article(type)} intent needs {with_article(type.lower())} payload")
        return
    match payload:
        case TextPayload(text=text):
            v.check(bool(text.strip()), "payload.text.text", "must not be empty")
            v.check(len(text) <= MAX_TEXT, "payload.text.text", f"must be at most {MAX_TEXT} characters")
        case AudioPayload(audio_url=url):
            _check_url(v, "payload.audio.audio_url", url)
        case MediaPayload(media_url=url, mime_type=mime, caption=caption):
            _check_url(v, "payload.media.media_url", url)
            v.check(
                "/" in mime and " " not in mime.strip() and len(mime) <= 100,
                "payload.media.mime_type",
                "must be a MIME type like image/jpeg",
            )
            v.check(
                len(caption) <= MAX_CAPTION,
                "payload.media.caption",
                f"must be at most {MAX_CAPTION} characters",
            )
        case ReactionPayload(emoji=emoji, message_ref=ref):
            v.check(len(emoji) <= 16, "payload.reaction.emoji", "must be one emoji (or empty to remove)")
            v.check(bool(ref.strip()), "payload.reaction.message_ref", "must name the message reacted to")


def _check_url(v: Violations, field: str, url: str) -> None:
    v.check(
        url.startswith(("https://", "http://")) and len(url) <= MAX_URL and " " not in url,
        field,
        "must be an http(s) URL",
    )
