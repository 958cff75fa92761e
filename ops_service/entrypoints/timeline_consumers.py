"""Ops' timeline consumers: one durable consumer per context's stream, every event type, each batch recorded
in one transaction (the facts, then their counters), and the Prometheus series once it committed."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from google.protobuf.message import Message

from ops_service.application.record_facts import FactsRecorded, RecordFactsHandler
from ops_service.application.timeline_ports import TimelineUnitOfWork
from ops_service.domain import execution_counts as counts
from ops_service.domain.funnel import funnel_stage
from ops_service.infrastructure import timeline_metrics as metrics
from ops_service.infrastructure.timeline_mapping import EVENT_MODULES, event_types, record_from_event

DURABLE_PREFIX = "ops-timeline-"


class TimelineFacts:
    """The handler of every event type of one context (so a batch is applied in stream order)."""

    def __init__(self, record: RecordFactsHandler) -> None:
        self._record = record

    async def __call__(self, event: Message, uow: TimelineUnitOfWork) -> None:
        await self.handle_many([event], uow)

    async def handle_many(self, events: Sequence[Message], uow: Any) -> None:
        result = await self._record(uow, [record_from_event(event) for event in events])
        uow.after_transaction(partial(_count, result))


def handlers(context: str, facts: TimelineFacts) -> dict[type[Message], TimelineFacts]:
    return dict.fromkeys(event_types(context), facts)


def contexts() -> list[str]:
    return list(EVENT_MODULES)


def _count(result: FactsRecorded, committed: bool) -> None:
    if not committed:
        return
    for record in result.recorded:  # new facts only: a redelivered one is not among them
        metrics.TIMELINE_FACTS.labels(record.recorded.subject.split(".", 1)[0]).inc()
        stage = funnel_stage(record.fact)
        if stage is not None:
            metrics.FUNNEL.labels(stage).inc()
    for delta in result.counted:
        if delta.metric == counts.SUBMITTED or delta.metric == counts.APPROVED:
            metrics.INTENTS.labels(delta.metric).inc(delta.count)
        elif delta.metric in counts.NOT_APPROVED:
            metrics.INTENTS.labels(delta.metric).inc(delta.count)
            metrics.NOT_APPROVED.labels(delta.label).inc(delta.count)
        elif delta.metric in (counts.SENT, counts.FAILED, counts.RETRIES, counts.NEEDS_REVIEW):
            metrics.SENDS.labels(delta.metric).inc(delta.count)
            if delta.metric == counts.FAILED:
                metrics.FAILURES.labels(delta.label or "UNSPECIFIED").inc(delta.count)
        elif delta.metric in (counts.DELIVERED, counts.READ):
            metrics.DELIVERIES.labels(delta.metric).inc(delta.count)
        elif delta.metric == counts.COOLDOWNS:
            metrics.COOLDOWNS.inc(delta.count)
        elif delta.metric == counts.TIME_TO_SEND:
            metrics.TIME_TO_SEND.observe(delta.total / 1000)
        elif delta.metric == counts.PRESSURE:
            metrics.RATE_PRESSURE.observe(delta.total / counts.PRESSURE_SCALE)
