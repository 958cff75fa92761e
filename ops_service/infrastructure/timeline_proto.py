"""Timeline entries and execution metrics -> their protobuf answers."""

from __future__ import annotations

from google.protobuf.any_pb2 import Any as AnyProto

from libs.rpc.convert import to_timestamp
from ops_service.application.execution_metrics import ExecutionMetricsResult, InstanceMetricsResult
from ops_service.application.timeline_ports import StoredFact
from ops_service.domain.execution_counts import Counts, InstanceFigures
from whatlead.executor.v1 import executor_pb2
from whatlead.gate.v1 import gate_pb2
from whatlead.ops.v1 import ops_pb2

_TYPE_URL_PREFIX = "type.googleapis.com/"


def entry_to_proto(fact: StoredFact) -> ops_pb2.TimelineEntry:
    return ops_pb2.TimelineEntry(
        event_id=fact.event_id,
        event_type=fact.type_name,
        subject=fact.subject,
        occurred_at=to_timestamp(fact.occurred_at),
        aggregate_id=fact.aggregate_id,
        summary=fact.summary,
        # The stored bytes as they are: no decoding to answer.
        event=AnyProto(type_url=_TYPE_URL_PREFIX + fact.type_name, value=fact.payload),
        actor=fact.actor,
    )


def _counts(counts: Counts) -> ops_pb2.ExecutionCounts:
    return ops_pb2.ExecutionCounts(**vars(counts))


def _reason(name: str) -> gate_pb2.DecisionReason.ValueType:
    try:
        return gate_pb2.DecisionReason.Value("DECISION_REASON_" + name)
    except ValueError:
        return gate_pb2.DECISION_REASON_UNSPECIFIED


def _error_class(name: str) -> executor_pb2.ErrorClass.ValueType:
    try:
        return executor_pb2.ErrorClass.Value("ERROR_CLASS_" + name)
    except ValueError:
        return executor_pb2.ERROR_CLASS_UNSPECIFIED


def _failures(by_class: dict[str, int]) -> list[ops_pb2.FailureCount]:
    return [
        ops_pb2.FailureCount(error_class=_error_class(name), count=count)
        for name, count in sorted(by_class.items())
    ]


def instance_to_proto(figures: InstanceFigures) -> ops_pb2.InstanceMetrics:
    return ops_pb2.InstanceMetrics(
        instance_id=figures.instance_id,
        counts=_counts(figures.counts),
        avg_time_to_send_ms=figures.time_to_send.average_ms,
        p95_time_to_send_ms=figures.time_to_send.percentile_ms(0.95),
        p50_time_to_send_ms=figures.time_to_send.percentile_ms(0.50),
        cooldowns_started=figures.cooldowns,
        share_of_sent=figures.share_of_sent,
        peak_rate_pressure=figures.peak_rate_pressure,
        avg_rate_pressure=figures.avg_rate_pressure,
        failures_by_class=_failures(figures.failures_by_class),
    )


def execution_metrics_to_proto(result: ExecutionMetricsResult) -> ops_pb2.GetExecutionMetricsResponse:
    figures = result.figures
    return ops_pb2.GetExecutionMetricsResponse(
        metrics=ops_pb2.ExecutionMetrics(
            totals=_counts(figures.counts),
            avg_time_to_send_ms=figures.time_to_send.average_ms,
            p95_time_to_send_ms=figures.time_to_send.percentile_ms(0.95),
            p50_time_to_send_ms=figures.time_to_send.percentile_ms(0.50),
            not_approved_by_reason=[
                ops_pb2.ReasonCount(reason=_reason(name), count=count)
                for name, count in sorted(figures.not_approved_by_reason.items(), key=lambda item: -item[1])
            ],
            instances=[instance_to_proto(each) for each in figures.instances],
            delivered_ratio=figures.delivered_ratio,
            read_ratio=figures.read_ratio,
            failures_by_class=_failures(figures.failures_by_class),
        ),
        window_start=to_timestamp(result.window_start),
        window_end=to_timestamp(result.window_end),
    )


def instance_metrics_to_proto(result: InstanceMetricsResult) -> ops_pb2.GetInstanceMetricsResponse:
    return ops_pb2.GetInstanceMetricsResponse(
        metrics=instance_to_proto(result.figures),
        window_start=to_timestamp(result.window_start),
        window_end=to_timestamp(result.window_end),
        hours=[
            ops_pb2.HourCounts(hour_start=to_timestamp(hour.hour_start), **hour.counts)
            for hour in result.hours
        ],
    )
