"""One intent's life as every context publishes it, with facts around it that must stay out of its
timeline (another intent, another organization, other instances, campaigns and phones, other times).
Shared by the unit and the integration tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from google.protobuf.message import Message

from libs.rpc.convert import to_timestamp
from libs.seedwork.ids import new_id
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import (
    executor_events_pb2 as x,
)
from whatlead.events.v1 import (
    gate_events_pb2 as g,
)
from whatlead.events.v1 import (
    ops_events_pb2 as o,
)
from whatlead.events.v1 import (
    provider_events_pb2 as p,
)
from whatlead.events.v1 import (
    reputation_events_pb2 as r,
)
from whatlead.executor.v1 import executor_pb2
from whatlead.gate.v1 import gate_pb2
from whatlead.ops.v1 import ops_pb2
from whatlead.reputation.v1 import reputation_pb2

PHONE = "5511988887777"
OTHER_PHONE = "5511977776666"


@dataclass
class Story:
    t0: datetime
    org: str = field(default_factory=new_id)
    other_org: str = field(default_factory=new_id)
    intent: str = field(default_factory=new_id)
    other_intent: str = field(default_factory=new_id)
    chosen: str = field(default_factory=new_id)  # the instance the intent goes through
    refused: str = field(default_factory=new_id)  # the other candidate
    campaign: str = field(default_factory=new_id)
    key: str = field(default_factory=new_id)
    events: list[Message] = field(default_factory=list)  # everything, in publication order
    timeline: list[str] = field(default_factory=list)  # the intent's entries' event ids, oldest first

    def at(self, seconds: float) -> datetime:
        return self.t0 + timedelta(seconds=seconds)

    def meta(
        self, seconds: float, *, aggregate: str, correlation: str = "", org: str = "", actor: str = ""
    ) -> common_pb2.EventMeta:
        return common_pb2.EventMeta(
            event_id=new_id(),
            organization_id=org or self.org,
            aggregate_id=aggregate,
            correlation_id=correlation or aggregate,
            occurred_at=to_timestamp(self.at(seconds)),
            actor=actor,
        )

    def add(self, event: Message, *, in_timeline: bool) -> Message:
        self.events.append(event)
        if in_timeline:
            self.timeline.append(event.meta.event_id)  # type: ignore[attr-defined]
        return event


def _candidate(instance: str, *, allow: bool, pressure: float = 0.0) -> gate_pb2.CandidateVerdict:
    if allow:
        return gate_pb2.CandidateVerdict(
            instance_id=instance, verdict=gate_pb2.VERDICT_ALLOW, score=0.82, rate_pressure=pressure
        )
    return gate_pb2.CandidateVerdict(
        instance_id=instance, verdict=gate_pb2.VERDICT_RECOVERABLE, reason=gate_pb2.DECISION_REASON_RATE_LIMIT
    )


def _created(s: Story, seconds: float, intent: str, *, actor: str, org: str = "") -> g.IntentCreated:
    return g.IntentCreated(
        meta=s.meta(seconds, aggregate=intent, org=org, actor=actor),
        intent=gate_pb2.MessageIntent(
            id=intent,
            organization_id=org or s.org,
            target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value=PHONE),
            type=common_pb2.MESSAGE_TYPE_TEXT,
            purpose=common_pb2.PURPOSE_DISPATCH,
            campaign_id=s.campaign,
            created_at=to_timestamp(s.at(seconds)),
        ),
    )


def _approved(s: Story, seconds: float, intent: str, *, org: str = "") -> g.IntentApproved:
    return g.IntentApproved(
        meta=s.meta(seconds, aggregate=intent, org=org),
        intent_id=intent,
        target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value=PHONE),
        instance_id=s.chosen,
        provider=common_pb2.PROVIDER_WAHA,
        campaign_id=s.campaign,
        decision=gate_pb2.DecisionRecord(
            intent_id=intent,
            outcome=gate_pb2.DECISION_OUTCOME_APPROVED,
            chosen_instance_id=s.chosen,
            attempt=1,
            candidates=[_candidate(s.chosen, allow=True, pressure=0.4), _candidate(s.refused, allow=False)],
        ),
    )


def _sent(
    s: Story, seconds: float, intent: str, message: str, *, attempts: int, started: float
) -> x.MessageSent:
    job = f"job-{intent[-12:]}"
    return x.MessageSent(
        meta=s.meta(seconds, aggregate=job, correlation=intent),
        job_id=job,
        intent_id=intent,
        instance_id=s.chosen,
        provider=common_pb2.PROVIDER_WAHA,
        provider_message_id=message,
        attempts=attempts,
        sent_at=to_timestamp(s.at(seconds)),
        campaign_id=s.campaign,
        attempt_started_at=to_timestamp(s.at(started)),
    )


def _intent_sent(s: Story, seconds: float, intent: str, message: str) -> g.IntentSent:
    return g.IntentSent(
        meta=s.meta(seconds, aggregate=intent),
        intent_id=intent,
        instance_id=s.chosen,
        provider_message_id=message,
        sent_at=to_timestamp(s.at(seconds - 0.1)),
    )


def _control(
    s: Story, seconds: float, scope: int, scope_id: str, *, paused: bool, org: str = ""
) -> o.ExecutionControlChanged:
    status = ops_pb2.CONTROL_STATUS_PAUSED if paused else ops_pb2.CONTROL_STATUS_ACTIVE
    return o.ExecutionControlChanged(
        meta=s.meta(seconds, aggregate=scope_id, org=org, actor=f"key:{s.key}"),
        control=ops_pb2.ExecutionControl(
            organization_id=org or s.org,
            scope=scope,  # type: ignore[arg-type]
            scope_id=scope_id,
            status=status,
            reason=ops_pb2.CONTROL_REASON_MANUAL,
            note="checking the number" if paused else "",
        ),
    )


def _provider(
    s: Story,
    seconds: float,
    kind: int,
    *,
    message: str,
    instance: str = "",
    remote: str = PHONE,
    from_me: bool = True,
    text: str = "",
) -> p.ProviderEventReceived:
    instance = instance or s.chosen
    return p.ProviderEventReceived(
        meta=s.meta(seconds, aggregate=instance, correlation=message),
        type=kind,  # type: ignore[arg-type]
        provider=common_pb2.PROVIDER_WAHA,
        instance_id=instance,
        provider_instance_ref="sales-1",
        provider_message_id=message,
        remote_jid=f"{remote}@s.whatsapp.net",
        occurred_at=to_timestamp(s.at(seconds)),
        from_me=from_me,
        text=text,
    )


def _cooldown(s: Story, seconds: float, instance: str, *, org: str = "") -> r.CooldownStarted:
    return r.CooldownStarted(
        meta=s.meta(seconds, aggregate=instance, org=org),
        instance_id=instance,
        cooldown_until=to_timestamp(s.at(seconds + 3600)),
        reason=reputation_pb2.COOLDOWN_REASON_REACHOUT_TIMELOCK,
    )


def build_story(t0: datetime, **ids: str) -> Story:
    """`ids`: Story's ids to use instead of new ones (org, chosen, ...)."""
    s = Story(t0, **ids)  # type: ignore[arg-type]
    # What the provider calls each message: unique, as WhatsApp's ids are.
    message, other_message = (
        f"true_{PHONE}@c.us_{s.intent[-12:]}",
        f"true_{PHONE}@c.us_{s.other_intent[-12:]}",
    )
    job = f"job-{s.intent[-12:]}"
    # Before the intent: a cooldown of the chosen number (not in its life).
    s.add(_cooldown(s, -600, s.chosen), in_timeline=False)
    # A pause of the organization over before the intent came: not in its life.
    s.add(_control(s, -300, ops_pb2.CONTROL_SCOPE_ORGANIZATION, s.org, paused=True), in_timeline=False)
    s.add(_control(s, -200, ops_pb2.CONTROL_SCOPE_ORGANIZATION, s.org, paused=False), in_timeline=False)
    # Its campaign's pause, in force when it came and lifted before it was decided: it held the intent.
    s.add(_control(s, -50, ops_pb2.CONTROL_SCOPE_CAMPAIGN, s.campaign, paused=True), in_timeline=True)
    s.add(_created(s, 0, s.intent, actor=f"key:{s.key}"), in_timeline=True)
    s.add(_control(s, 0.05, ops_pb2.CONTROL_SCOPE_CAMPAIGN, s.campaign, paused=False), in_timeline=True)
    s.add(_approved(s, 0.1, s.intent), in_timeline=True)
    s.add(_control(s, 0.2, ops_pb2.CONTROL_SCOPE_INSTANCE, s.chosen, paused=True), in_timeline=True)
    s.add(_control(s, 0.25, ops_pb2.CONTROL_SCOPE_CAMPAIGN, new_id(), paused=True), in_timeline=False)
    s.add(_control(s, 0.4, ops_pb2.CONTROL_SCOPE_INSTANCE, s.chosen, paused=False), in_timeline=True)
    s.add(
        x.MessageRetryScheduled(
            meta=s.meta(0.5, aggregate=job, correlation=s.intent),
            job_id=job,
            intent_id=s.intent,
            instance_id=s.chosen,
            provider=common_pb2.PROVIDER_WAHA,
            attempt=1,
            next_attempt_at=to_timestamp(s.at(1.5)),
            error=executor_pb2.JobError(error_class=executor_pb2.ERROR_CLASS_TRANSIENT, code="http_503"),
            attempt_started_at=to_timestamp(s.at(0.45)),
        ),
        in_timeline=True,
    )
    s.add(_sent(s, 2.0, s.intent, message, attempts=2, started=1.5), in_timeline=True)
    s.add(_intent_sent(s, 2.1, s.intent, message), in_timeline=True)
    s.add(_provider(s, 2.2, p.PROVIDER_EVENT_TYPE_MESSAGE_SENT, message=message), in_timeline=True)
    s.add(_cooldown(s, 2.5, s.chosen), in_timeline=True)
    s.add(_cooldown(s, 2.6, s.refused), in_timeline=False)  # not the intent's number
    s.add(_provider(s, 2.9, p.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, message=message), in_timeline=True)
    for seconds, status in (
        (3.0, executor_pb2.DELIVERY_STATUS_DELIVERED),
        (4.0, executor_pb2.DELIVERY_STATUS_READ),
    ):
        s.add(
            x.MessageDeliveryStatusChanged(
                meta=s.meta(seconds, aggregate=job, correlation=s.intent),
                job_id=job,
                intent_id=s.intent,
                instance_id=s.chosen,
                provider=common_pb2.PROVIDER_WAHA,
                provider_message_id=message,
                status=status,
                status_at=to_timestamp(s.at(seconds)),
            ),
            in_timeline=True,
        )
    reply = _provider(
        s, 5.0, p.PROVIDER_EVENT_TYPE_MESSAGE_RECEIVED, message="3EB0C3", from_me=False, text="yes please"
    )
    s.add(reply, in_timeline=True)
    s.add(
        _provider(
            s,
            5.5,
            p.PROVIDER_EVENT_TYPE_MESSAGE_RECEIVED,
            message="3EB0D4",
            remote=OTHER_PHONE,
            from_me=False,
        ),
        in_timeline=False,
    )
    # Another intent of the organization, on the same number, to the same phone a minute later.
    other_job = f"job-{s.other_intent[-12:]}"
    s.add(_created(s, 60, s.other_intent, actor="service"), in_timeline=False)
    s.add(
        g.IntentQueued(
            meta=s.meta(60.05, aggregate=s.other_intent),
            intent_id=s.other_intent,
            reason=gate_pb2.DECISION_REASON_CONTACT_MIN_INTERVAL,
            decision=gate_pb2.DecisionRecord(
                intent_id=s.other_intent,
                outcome=gate_pb2.DECISION_OUTCOME_QUEUED,
                reason=gate_pb2.DECISION_REASON_CONTACT_MIN_INTERVAL,
                attempt=1,
            ),
        ),
        in_timeline=False,
    )
    s.add(_approved(s, 66, s.other_intent), in_timeline=False)
    s.add(_sent(s, 66.7, s.other_intent, other_message, attempts=1, started=66.2), in_timeline=False)
    s.add(_intent_sent(s, 66.9, s.other_intent, other_message), in_timeline=False)
    # The contact answers again after the next intent to it: that reply is the next intent's.
    s.add(
        _provider(
            s, 70, p.PROVIDER_EVENT_TYPE_MESSAGE_RECEIVED, message="3EB0E5", from_me=False, text="and again"
        ),
        in_timeline=False,
    )
    s.add(
        x.MessageFailed(
            meta=s.meta(67, aggregate=other_job, correlation=s.other_intent),
            job_id=other_job,
            intent_id=s.other_intent,
            instance_id=s.chosen,
            provider=common_pb2.PROVIDER_WAHA,
            error=executor_pb2.JobError(
                error_class=executor_pb2.ERROR_CLASS_PERMANENT, code="not_on_whatsapp"
            ),
            attempts=1,
        ),
        in_timeline=False,
    )
    # Another organization: a pause of its whole organization, its own intent.
    s.add(
        _control(s, 0.3, ops_pb2.CONTROL_SCOPE_ORGANIZATION, s.other_org, paused=True, org=s.other_org),
        in_timeline=False,
    )
    s.add(_created(s, 1, new_id(), actor="service", org=s.other_org), in_timeline=False)
    return s
