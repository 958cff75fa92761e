"""Record what providers and the Executor report as signals: each fact once, counted in its buckets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from libs.seedwork.clock import Clock
from reputation_service.domain.evaluation import RestrictionKind
from reputation_service.domain.ports import ReputationUnitOfWork
from reputation_service.domain.signals import (
    TRACKED_KINDS,
    Correlation,
    CounterDeltas,
    Counts,
    Signal,
    SignalKind,
    SignalSource,
    TrackedMessage,
    fact_key,
)

_ANSWERED = Counts(answered=1)  # a send answered (by its delivery, read or failure); the same every time


@dataclass(frozen=True, kw_only=True)
class Observation:
    """One fact as a report carried it.

    `identity` names the fact ("msg:<message key>", "event:<event id>", "until:<time>"); empty for an
    Executor failure that carries only its job: the message the job sent, when known, else the job and its
    round of attempts. `organization_id`: "" when the report does not say (webhooks); otherwise it must be
    the instance's."""

    kind: SignalKind
    instance_id: str
    organization_id: str
    occurred_at: datetime
    source: SignalSource
    identity: str = ""
    provider_message_id: str = ""
    message_key: str = ""
    job_id: str = ""
    attempts: int = 0
    is_group: bool | None = None
    # REACHOUT_TIMELOCKED and BANNED: which restriction, and its end when the provider said it.
    restriction: RestrictionKind | None = None
    restriction_until: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Restriction:
    """A restriction reported for the first time (a new fact): it cools the number at once."""

    instance_id: str
    kind: RestrictionKind
    until: datetime | None


@dataclass(frozen=True)
class RecordSignals:
    """The facts of a batch of reports, in the order they arrived."""

    observations: Sequence[Observation]


@dataclass(frozen=True)
class SignalsRecorded:
    recorded: tuple[Signal, ...] = ()
    duplicates: tuple[SignalKind, ...] = ()  # facts already recorded (another report of the same fact)
    unknown_instance: tuple[Observation, ...] = field(default=())  # dropped: not in the registry
    restrictions: tuple[Restriction, ...] = ()  # of the recorded facts, in the order they arrived


class RecordSignalsHandler:
    """Inside the caller's transaction (the event consumer's, with its inbox rows): records each new fact,
    correlates it with what is known of its message (latency, answered sends) and adds it all to the
    instance's buckets. Reports about instances the registry does not know are dropped.

    A batch costs a fixed number of statements, whatever its size: the instances, the jobs' messages, the
    messages locked, the new facts, the messages and latencies changed, the buckets."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def __call__(self, uow: ReputationUnitOfWork, command: RecordSignals) -> SignalsRecorded:
        observations = command.observations
        if not observations:
            return SignalsRecorded()
        organizations = await uow.instances.organizations_of({o.instance_id for o in observations})
        known: list[Observation] = []
        unknown: list[Observation] = []
        for o in observations:
            organization = organizations.get(o.instance_id)
            mine = organization is not None and o.organization_id in ("", organization)
            (known if mine else unknown).append(o)
        now = self._clock.now()
        sent_by_job = await self._sent_by_job(uow, known)
        signals = [self._signal(o, organizations[o.instance_id], sent_by_job, now) for o in known]
        # Every message the batch correlates, locked before any of its facts (see SignalLog.claim_messages).
        messages = await uow.signals.claim_messages(
            {(s.instance_id, s.message_key) for s in signals if s.kind in TRACKED_KINDS and s.message_key},
            first_seen_at=now,
        )
        new = await uow.signals.add_new(_first_of_each(signals))
        deltas = CounterDeltas()
        recorded: list[Signal] = []
        duplicates: list[SignalKind] = []
        restrictions: list[Restriction] = []
        changed: dict[tuple[str, str], TrackedMessage] = {}
        latencies: dict[str, int] = {}
        for observation, signal in zip(known, signals, strict=True):
            if signal.fact_key not in new:
                duplicates.append(signal.kind)
                continue
            new.discard(signal.fact_key)  # the same fact twice in one batch: recorded once
            recorded.append(signal)
            if observation.restriction is not None:
                restrictions.append(
                    Restriction(
                        instance_id=signal.instance_id,
                        kind=observation.restriction,
                        until=observation.restriction_until,
                    )
                )
            deltas.add(signal.instance_id, signal.occurred_at, Counts.of_kind(signal.kind))
            key = (signal.instance_id, signal.message_key)
            if key in messages:
                changed[key] = messages[key]
                self._correlate(messages[key], signal, observation, deltas, latencies)
            elif signal.kind is SignalKind.MESSAGE_SENT:
                # A send whose provider named no message cannot meet its receipts: never a soft failure.
                deltas.add(signal.instance_id, signal.occurred_at, _ANSWERED)
        await uow.signals.save_messages(list(changed.values()))
        await uow.signals.set_ack_latencies(latencies)
        await uow.signals.add_counts(deltas)
        return SignalsRecorded(tuple(recorded), tuple(duplicates), tuple(unknown), tuple(restrictions))

    @staticmethod
    async def _sent_by_job(
        uow: ReputationUnitOfWork, observations: Sequence[Observation]
    ) -> dict[tuple[str, str], tuple[str, int]]:
        """(instance, job) -> (message key, attempts) of the send recorded for each job an Executor failure
        of the batch names; the batch's own sends included (they precede their failures in the stream)."""
        jobs = {(o.instance_id, o.job_id) for o in observations if not o.identity and o.job_id}
        if not jobs:
            return {}
        found = {
            job: (message.message_key, message.attempts)
            for job, message in (await uow.signals.messages_of_jobs(jobs)).items()
        }
        for o in observations:
            if o.kind is SignalKind.MESSAGE_SENT and o.message_key and (o.instance_id, o.job_id) in jobs:
                found[(o.instance_id, o.job_id)] = (o.message_key, o.attempts)
        return found

    @staticmethod
    def _signal(
        observation: Observation,
        organization: str,
        sent_by_job: Mapping[tuple[str, str], tuple[str, int]],
        now: datetime,
    ) -> Signal:
        message = observation.message_key
        identity = observation.identity
        if not identity:  # an Executor failure: the message its job sent in this round, if recorded
            sent = sent_by_job.get((observation.instance_id, observation.job_id))
            if sent is not None and sent[1] == observation.attempts:
                message = sent[0]
                identity = f"msg:{message}"
            else:
                identity = f"job:{observation.job_id}:{observation.attempts}"
        return Signal(
            fact_key=fact_key(observation.kind, observation.instance_id, identity),
            kind=observation.kind,
            instance_id=observation.instance_id,
            organization_id=organization,
            # A provider's clock ahead of ours must not put facts in buckets no window has reached yet.
            occurred_at=min(observation.occurred_at, now),
            source=observation.source,
            provider_message_id=observation.provider_message_id,
            message_key=message,
            is_group=observation.is_group,
        )

    @staticmethod
    def _correlate(
        tracked: TrackedMessage,
        signal: Signal,
        observation: Observation,
        deltas: CounterDeltas,
        latencies: dict[str, int],
    ) -> None:
        correlation: Correlation
        match signal.kind:
            case SignalKind.MESSAGE_SENT:
                correlation = tracked.sent(
                    signal.occurred_at, job_id=observation.job_id, attempts=observation.attempts
                )
            case SignalKind.DELIVERED:
                correlation = tracked.delivered(signal.occurred_at)
            case _:
                correlation = tracked.read_or_failed()
        if correlation.answered_send_at is not None:
            deltas.add(signal.instance_id, correlation.answered_send_at, _ANSWERED)
        if correlation.latency_ms is not None and correlation.delivered_at is not None:
            deltas.add(
                signal.instance_id, correlation.delivered_at, Counts.of_latency(correlation.latency_ms)
            )
            delivered = fact_key(SignalKind.DELIVERED, signal.instance_id, f"msg:{signal.message_key}")
            latencies[delivered] = correlation.latency_ms


def _first_of_each(signals: Sequence[Signal]) -> list[Signal]:
    """One signal per fact key, the first reported."""
    seen: dict[str, Signal] = {}
    for signal in signals:
        seen.setdefault(signal.fact_key, signal)
    return list(seen.values())
