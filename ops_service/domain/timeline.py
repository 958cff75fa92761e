"""The timeline: every context's facts, as ops records them, and the one line each reads as.

A fact is recorded once (by its event id) with the columns that find it from an intent: its correlation id
(the intent id for intent and message events), and, for facts that touch an intent without naming it, the
instance, campaign, control scope or remote phone they are about. Each kind of fact below is what ops reads
out of one kind of event; anything else is kept as `OtherFact`, with its subject as the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

Line = str


@dataclass(frozen=True, kw_only=True)
class Recorded:
    """What every stored fact carries (from the event's meta and envelope), and how to answer with it."""

    event_id: str
    type_name: str  # the event's full protobuf name
    subject: str  # without the subject root
    organization_id: str
    aggregate_id: str
    correlation_id: str
    occurred_at: datetime
    actor: str  # "key:<id>", "service", an operator's name, or "" for the system
    payload: bytes  # the event, serialized, so a timeline answers with it typed


# ---- what ops reads out of each event (summaries and counters need no protobuf) ----------------------


@dataclass(frozen=True, kw_only=True)
class IntentSubmitted:
    intent_id: str
    target: str  # the phone digits or group id
    purpose: str
    message_type: str
    campaign_id: str
    pinned_instance_id: str


@dataclass(frozen=True, kw_only=True)
class CandidateVerdict:
    instance_id: str
    verdict: str  # ALLOW, RECOVERABLE, FINAL
    reason: str  # "" when ALLOW
    score: float
    rate_pressure: float  # used / cap of its tightest rate window, 0..1


@dataclass(frozen=True, kw_only=True)
class IntentDecided:
    intent_id: str
    outcome: str  # APPROVED, QUEUED, BLOCKED, DROPPED
    reason: str  # the dominant reason when not APPROVED, "" else
    attempt: int  # 1 for the first decision
    instance_id: str  # the chosen one, APPROVED only
    provider: str
    campaign_id: str
    queued_until: datetime | None
    candidates: tuple[CandidateVerdict, ...] = ()
    target: str = ""  # APPROVED: the phone digits (or group id) it goes to

    @property
    def chosen(self) -> CandidateVerdict | None:
        return next((c for c in self.candidates if c.instance_id == self.instance_id), None)


@dataclass(frozen=True, kw_only=True)
class IntentClosed:
    """The Gate recorded the intent's end (its IntentSent or IntentFailed): what the Executor reported."""

    intent_id: str
    sent: bool
    instance_id: str
    provider_message_id: str
    error_class: str
    error_code: str
    at: datetime | None


@dataclass(frozen=True, kw_only=True)
class AttemptEnded:
    """One of the Executor's outcomes for the intent's job: SENT, FAILED (final), RETRY (another attempt
    scheduled) or NEEDS_REVIEW."""

    intent_id: str
    job_id: str
    outcome: str  # SENT, FAILED, RETRY, NEEDS_REVIEW
    instance_id: str
    provider: str
    campaign_id: str
    attempt: int  # the attempt that ended (attempts made so far)
    started_at: datetime | None  # its claim; None when no attempt ran (or an operator's retry)
    ended_at: datetime
    provider_message_id: str = ""
    error_class: str = ""
    error_code: str = ""
    next_attempt_at: datetime | None = None
    retried_by: str = ""  # an operator's retry: who asked


@dataclass(frozen=True, kw_only=True)
class DeliveryChanged:
    intent_id: str
    instance_id: str
    status: str  # DELIVERED, READ
    at: datetime


@dataclass(frozen=True, kw_only=True)
class ProviderReported:
    """The gateway's ProviderEventReceived: an ack about one of our messages, or an incoming message."""

    kind: str  # MESSAGE_SENT, MESSAGE_DELIVERED, MESSAGE_READ, MESSAGE_REPLIED, MESSAGE_RECEIVED, ...
    instance_id: str
    provider: str
    provider_message_id: str
    remote_phone: str  # the other party's digits (a person's chat), "" for groups or unknown
    from_me: bool
    text: str
    reply_to_provider_message_id: str = ""  # an incoming message quoting one of ours

    @property
    def incoming(self) -> bool:
        return self.kind in ("MESSAGE_REPLIED", "MESSAGE_RECEIVED") and not self.from_me


@dataclass(frozen=True, kw_only=True)
class CooldownStarted:
    instance_id: str
    until: datetime | None
    reason: str


@dataclass(frozen=True, kw_only=True)
class ControlChanged:
    scope: str  # INSTANCE, ORGANIZATION, CAMPAIGN
    scope_id: str
    status: str  # PAUSED, ACTIVE
    reason: str
    note: str
    until: datetime | None


@dataclass(frozen=True, kw_only=True)
class OtherFact:
    """An event no timeline line is written for: kept, shown by its type."""

    description: str
    instance_id: str = ""


Fact = (
    IntentSubmitted
    | IntentDecided
    | IntentClosed
    | AttemptEnded
    | DeliveryChanged
    | ProviderReported
    | CooldownStarted
    | ControlChanged
    | OtherFact
)


@dataclass(frozen=True, kw_only=True)
class TimelineRecord:
    """One stored fact: its envelope, the columns that find it, and its line."""

    recorded: Recorded
    fact: Fact
    instance_id: str = ""
    campaign_id: str = ""
    scope: str = ""  # control changes: the scope they pause or resume
    # An intent's target (its creation, and its approval on the chosen instance); an incoming message's sender
    remote_phone: str = ""
    provider_message_id: str = ""  # our message the fact is about (a send, an ack, a reply quoting it)
    summary: Line = field(default="")


def record_of(recorded: Recorded, fact: Fact) -> TimelineRecord:
    """The stored row of a fact: its lookup columns and its line."""
    instance_id = getattr(fact, "instance_id", "") or ""
    campaign_id = getattr(fact, "campaign_id", "") or ""
    scope = remote_phone = ""
    message = getattr(fact, "provider_message_id", "") or ""
    if isinstance(fact, IntentSubmitted) or (isinstance(fact, IntentDecided) and fact.outcome == "APPROVED"):
        remote_phone = fact.target
    if isinstance(fact, ControlChanged):
        scope = fact.scope
        if fact.scope == "INSTANCE":
            instance_id = fact.scope_id
        elif fact.scope == "CAMPAIGN":
            campaign_id = fact.scope_id
    if isinstance(fact, ProviderReported) and fact.incoming:
        remote_phone = fact.remote_phone
        message = fact.reply_to_provider_message_id  # its own id is about no message of ours
    return TimelineRecord(
        recorded=recorded,
        fact=fact,
        instance_id=instance_id,
        campaign_id=campaign_id,
        scope=scope,
        remote_phone=remote_phone,
        provider_message_id=message,
        summary=summarize(fact, recorded.actor),
    )


# ---- one line per fact --------------------------------------------------------------------------------


def short(identifier: str) -> str:
    """Ids are written whole: UUIDv7s made within a minute share their first characters, and a line's id is
    what a reader copies into the next command."""
    return identifier


def _when(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S") if moment is not None else "?"


def _who(actor: str) -> str:
    if actor.startswith("key:"):
        return f"API key {short(actor[4:])}"
    if actor == "service":
        return "a WhatLead service"
    return actor or "the system"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _verdict(candidate: CandidateVerdict, chosen: str) -> str:
    mark = " (chosen)" if candidate.instance_id == chosen else ""
    if candidate.verdict == "ALLOW":
        return f"{short(candidate.instance_id)} ALLOW score {candidate.score:.2f}{mark}"
    return f"{short(candidate.instance_id)} {candidate.verdict} {candidate.reason}"


def _error(error_class: str, code: str) -> str:
    return f"{error_class} {code}".strip() or "no error"


def summarize(fact: Fact, actor: str) -> Line:
    """The fact as one line of the intent's story."""
    match fact:
        case IntentSubmitted():
            pinned = f", pinned to {short(fact.pinned_instance_id)}" if fact.pinned_instance_id else ""
            campaign = f", campaign {short(fact.campaign_id)}" if fact.campaign_id else ""
            return (
                f"Submitted by {_who(actor)}: {fact.message_type} to {fact.target} "
                f"for {fact.purpose}{campaign}{pinned}"
            )
        case IntentDecided():
            verdicts = "; ".join(_verdict(c, fact.instance_id) for c in fact.candidates) or "no candidate"
            again = f" (decision {fact.attempt})" if fact.attempt > 1 else ""
            if fact.outcome == "APPROVED":
                return (
                    f"APPROVED{again} through instance {short(fact.instance_id)} ({fact.provider}); "
                    f"candidates: {verdicts}"
                )
            until = f" until {_when(fact.queued_until)}" if fact.queued_until is not None else ""
            return f"{fact.outcome}{again}: {fact.reason}{until}; candidates: {verdicts}"
        case AttemptEnded():
            started = f"started {_when(fact.started_at)}, " if fact.started_at is not None else ""
            tried = f"attempt {fact.attempt} ({started}ended {_when(fact.ended_at)})"
            if fact.outcome == "SENT":
                return (
                    f"Sent by {fact.provider} on {tried} through instance {short(fact.instance_id)}: "
                    f"provider message {fact.provider_message_id}"
                )
            if fact.outcome == "RETRY":
                if fact.retried_by:
                    return f"Retried by {_who(fact.retried_by)}: a new round of attempts"
                return (
                    f"{tried} failed: {_error(fact.error_class, fact.error_code)}; "
                    f"next attempt at {_when(fact.next_attempt_at)}"
                )
            if fact.outcome == "NEEDS_REVIEW":
                return f"Needs review after {tried}: {_error(fact.error_class, fact.error_code)}"
            return f"Failed for good after {tried}: {_error(fact.error_class, fact.error_code)}"
        case IntentClosed():
            if fact.sent:
                return f"The Gate marked the intent SENT through instance {short(fact.instance_id)}"
            return f"The Gate marked the intent FAILED: {_error(fact.error_class, fact.error_code)}"
        case DeliveryChanged():
            return f"{fact.status} at {_when(fact.at)}"
        case ProviderReported():
            if fact.incoming:
                quoted = f': "{fact.text[:60]}"' if fact.text else ""
                sender = fact.remote_phone or "the contact"
                return f"Reply from {sender} on instance {short(fact.instance_id)}{quoted}"
            kind = fact.kind.removeprefix("MESSAGE_").lower()
            return f"Provider {fact.provider} reported the message {kind} ({fact.provider_message_id})"
        case CooldownStarted():
            return f"Instance {short(fact.instance_id)} cooling down until {_when(fact.until)}: {fact.reason}"
        case ControlChanged():
            what = (
                "organization"
                if fact.scope == "ORGANIZATION"
                else f"{fact.scope.lower()} {short(fact.scope_id)}"
            )
            verb = "paused" if fact.status == "PAUSED" else "resumed"
            until = f" until {_when(fact.until)}" if fact.until is not None else ""
            note = f" ({fact.note})" if fact.note else ""
            return f"{_capital(_who(actor))} {verb} the {what}{until}: {fact.reason}{note}"
        case OtherFact():
            return fact.description
