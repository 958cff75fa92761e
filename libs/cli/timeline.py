"""`whatlead timeline <intent_id>` and `whatlead metrics`: what happened to a message, and how sending is
going (ops service)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import UTC

from google.protobuf.duration_pb2 import Duration

from libs.cli.common import Commands, deadline, duration, enum_label, json_output, output, say, when
from libs.cli.controls import ops
from whatlead.events.v1 import (  # noqa: F401  (--output json prints each entry's event, an Any, by its type)
    executor_events_pb2,
    gate_events_pb2,
    ops_events_pb2,
    provider_events_pb2,
    reputation_events_pb2,
)
from whatlead.gate.v1 import gate_pb2
from whatlead.ops.v1 import ops_pb2

SYSTEM = "system"  # how an entry with no actor (the services' own work) is shown


def show_timeline(args: argparse.Namespace) -> int:
    response = ops().GetIntentTimeline(
        ops_pb2.GetIntentTimelineRequest(organization_id=args.org, intent_id=args.intent_id),
        timeout=deadline(),
    )
    if not response.entries:
        say(f"nothing recorded for intent {args.intent_id} yet")
        return 1
    if json_output():
        for entry in response.entries:
            output(entry)
        return 0
    print(story(response.entries))
    return 0


def story(entries: Iterable[ops_pb2.TimelineEntry]) -> str:
    """One aligned line per entry, oldest first: time, the context it came from, what happened, who."""
    rows = [
        (
            f"{entry.occurred_at.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M:%S.%f}"[:-3],
            entry.subject.split(".", 1)[0] or "-",
            entry.summary or entry.event_type.rsplit(".", 1)[-1],
            entry.actor or SYSTEM,
        )
        for entry in entries
    ]
    contexts = max(len(row[1]) for row in rows)
    summaries = max(len(row[2]) for row in rows)
    return "\n".join(
        f"{at}  {context:<{contexts}}  {summary:<{summaries}}  {actor}"
        for at, context, summary, actor in rows
    )


def show_metrics(args: argparse.Namespace) -> int:
    window = Duration()
    window.FromTimedelta(duration(args.window))
    if args.instance:
        response = ops().GetInstanceMetrics(
            ops_pb2.GetInstanceMetricsRequest(
                organization_id=args.org, instance_id=args.instance, window=window
            ),
            timeout=deadline(),
        )
        output(
            response,
            lambda: (
                f"instance {args.instance}, {when(response.window_start)} .. "
                f"{when(response.window_end)} UTC\n{instance_report(response.metrics)}"
            ),
        )
        return 0
    totals = ops().GetExecutionMetrics(
        ops_pb2.GetExecutionMetricsRequest(organization_id=args.org, window=window), timeout=deadline()
    )
    output(
        totals,
        lambda: (
            f"{when(totals.window_start)} .. {when(totals.window_end)} UTC\n"
            f"{organization_report(totals.metrics)}"
        ),
    )
    return 0


def counts_line(counts: ops_pb2.ExecutionCounts) -> str:
    return "  ".join(f"{field.name} {getattr(counts, field.name)}" for field in counts.DESCRIPTOR.fields)


def _times(avg_ms: float, p95_ms: float) -> str:
    return f"time to send: avg {avg_ms / 1000:.2f}s  p95 {p95_ms / 1000:.2f}s"


def organization_report(metrics: ops_pb2.ExecutionMetrics) -> str:
    lines = [counts_line(metrics.totals), _times(metrics.avg_time_to_send_ms, metrics.p95_time_to_send_ms)]
    if metrics.not_approved_by_reason:
        lines.append(
            "not approved: "
            + "  ".join(
                f"{enum_label(gate_pb2.DecisionReason, r.reason)} {r.count}"
                for r in metrics.not_approved_by_reason
            )
        )
    if metrics.instances:
        lines.append(f"{'instance':<36}  {'sent':>6}  {'failed':>6}  {'share':>6}  {'avg':>7}  {'p95':>7}")
        lines += [
            f"{i.instance_id:<36}  {i.counts.sent:>6}  {i.counts.failed:>6}  {i.share_of_sent:>6.1%}  "
            f"{i.avg_time_to_send_ms / 1000:>6.2f}s  {i.p95_time_to_send_ms / 1000:>6.2f}s"
            for i in metrics.instances
        ]
    return "\n".join(lines)


def instance_report(metrics: ops_pb2.InstanceMetrics) -> str:
    return "\n".join(
        [
            counts_line(metrics.counts),
            _times(metrics.avg_time_to_send_ms, metrics.p95_time_to_send_ms),
            f"cooldowns started {metrics.cooldowns_started}  share of sent {metrics.share_of_sent:.1%}",
        ]
    )


def register(commands: Commands) -> None:
    timeline = commands.add_parser("timeline", help="an intent's story: every event, from every context")
    timeline.add_argument("intent_id")
    timeline.set_defaults(run=show_timeline)
    metrics = commands.add_parser("metrics", help="sending counts and times over a window ending now")
    metrics.add_argument("--window", default="1h", help="e.g. 15m, 1h, 7d (at most 30d)")
    metrics.add_argument("--instance", default="", help="one instance's metrics")
    metrics.set_defaults(run=show_metrics)
