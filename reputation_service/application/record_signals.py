"""Record what providers and the Executor report as signals: each fact once, counted in its buckets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from libs.seedwork.clock import Clock
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


@dataclass(frozen=True)
class RecordSignals:
    """The facts of a batch of reports, in the order they arrived."""

    observations: Sequence[Observation]


@dataclass(frozen=True)
class SignalsRecorded:
    recorded: tuple[Signal, ...] = ()
    duplicates: tuple[SignalKind, ...] = ()  # facts already recorded (another report of the same fact)
    unknown_instance: tuple[Observation, ...] = field(default=())  # dropped: not in the registry


class RecordSignalsHandler:
    """Inside the caller's transaction (the event consumer's, with its inbox rows): records each new fact,
    correlates it with what is known of its message (latency, answered sends) and adds it all to the
    instance's buckets. Reports about instances the registry does not know are dropped."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def __call__(self, uow: ReputationUnitOfWork, command: RecordSignals) -> SignalsRecorded:
        observations = command.observations
        if not observations:
            return SignalsRecorded()
        organizations = await uow.instances.organizations_of({o.instance_id for o in observations})
        now = self._clock.now()
        known: list[Observation] = []
        unknown: list[Observation] = []
        for o in observations:
            organization = organizations.get(o.instance_id)
            (
                known if organization is not None and o.organization_id in ("", organization) else unknown
            ).append(o)
        # Every message the batch correlates, locked up front (see SignalLog.claim_messages).
        messages = await uow.signals.claim_messages(
            {(o.instance_id, o.message_key) for o in known if o.kind in TRACKED_KINDS and o.message_key},
            first_seen_at=now,
        )
        deltas = CounterDeltas()
        recorded: list[Signal] = []
        duplicates: list[SignalKind] = []
        for observation in known:
            signal = await self._signal(uow, observation, organizations[observation.instance_id], now)
            if not await uow.signals.add(signal):
                duplicates.append(signal.kind)
                continue
            recorded.append(signal)
            deltas.add(signal.instance_id, signal.occurred_at, Counts.of_kind(signal.kind))
            if signal.kind in TRACKED_KINDS and signal.message_key:
                key = (signal.instance_id, signal.message_key)
                if key not in messages:  # an Executor failure, keyed by the message its job sent
                    messages |= await uow.signals.claim_messages({key}, first_seen_at=now)
                await self._correlate(uow, messages[key], signal, observation, deltas)
        if deltas:
            await uow.signals.add_counts(deltas)
        return SignalsRecorded(tuple(recorded), tuple(duplicates), tuple(unknown))

    async def _signal(
        self, uow: ReputationUnitOfWork, observation: Observation, organization: str, now: datetime
    ) -> Signal:
        message = observation.message_key
        identity = observation.identity
        if not identity:  # an Executor failure: the message its job sent in this round, if recorded
            sent = await uow.signals.message_of_job(observation.instance_id, observation.job_id)
            if sent is not None and sent.attempts == observation.attempts:
                message = sent.message_key
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

    async def _correlate(
        self,
        uow: ReputationUnitOfWork,
        tracked: TrackedMessage,
        signal: Signal,
        observation: Observation,
        deltas: CounterDeltas,
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
        await uow.signals.save_message(tracked)
        if correlation.answered_send_at is not None:
            deltas.add(signal.instance_id, correlation.answered_send_at, Counts(answered=1))
        if correlation.latency_ms is not None and correlation.delivered_at is not None:
            deltas.add(
                signal.instance_id, correlation.delivered_at, Counts.of_latency(correlation.latency_ms)
            )
            await uow.signals.set_ack_latency(
                fact_key(SignalKind.DELIVERED, signal.instance_id, f"msg:{signal.message_key}"),
                correlation.latency_ms,
            )
