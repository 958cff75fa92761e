"""WhatLead's Grafana dashboards, written as code so the five service dashboards share one shape (rate,
errors, duration, saturation) and every query names the series of the metrics contract the same way.

`python -m deploy.grafana.dashboards` rewrites deploy/grafana/dashboards/*.json (committed: Grafana's file
provider reads them); a test fails when they differ from what this module makes.

Conventions: the Prometheus datasource is the `${datasource}` variable; a service dashboard's `job` is a
hidden constant variable (the service's name, as in the scrape configs). A labelled counter that only
appears with its first event is written `... or vector(0)` where its absence means zero, and the panel's
description says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
# Codes that mean the server is in trouble (as in deploy/prometheus/rules): either spelling of the code.
SERVER_ERRORS = "(?i)unknown|internal|unavailable|deadline_?exceeded|data_?loss|unimplemented"
ABSENT_IS_ZERO = " Absent until the first one happens: shown as 0 until then."

Json = dict[str, Any]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat | bargauge
    width: int = 12
    stacked: bool = False


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    rows: list[tuple[str, list[Panel]]] = field(default_factory=list)
    job: str = ""  # a service dashboard's job label

    def to_json(self) -> Json:
        panels: list[Json] = []
        next_id, y = 1, 0
        for row_title, row_panels in self.rows:
            panels.append(
                {"id": next_id, "type": "row", "title": row_title, "collapsed": False, "panels": []}
                | {"gridPos": {"x": 0, "y": y, "w": 24, "h": 1}}
            )
            next_id, y, x = next_id + 1, y + 1, 0
            for panel in row_panels:
                if x + panel.width > 24:
                    x, y = 0, y + 8
                panels.append(_panel(panel, next_id, {"x": x, "y": y, "w": panel.width, "h": 8}))
                next_id, x = next_id + 1, x + panel.width
            y += 8
        variables: list[Json] = [
            {
                "name": "datasource",
                "label": "Prometheus",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
                "refresh": 1,
                "regex": "",
                "options": [],
            }
        ]
        if self.job:
            variables.append(
                {
                    "name": "job",
                    "type": "constant",
                    "query": self.job,
                    "current": {"text": self.job, "value": self.job},
                    "hide": 2,
                    "options": [],
                }
            )
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["whatlead"],
            "timezone": "browser",
            "editable": True,
            "graphTooltip": 1,
            "refresh": "30s",
            "schemaVersion": 39,
            "time": {"from": "now-6h", "to": "now"},
            "templating": {"list": variables},
            "annotations": {"list": []},
            "links": [{"title": "WhatLead", "type": "dashboards", "tags": ["whatlead"], "asDropdown": True}],
            "panels": panels,
        }


def _panel(panel: Panel, panel_id: int, grid: Json) -> Json:
    targets = [
        {"refId": chr(ord("A") + n), "datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend}
        | ({"instant": True, "range": False} if panel.kind == "bargauge" else {})
        for n, q in enumerate(panel.queries)
    ]
    custom: Json = {}
    options: Json = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    if panel.kind == "timeseries":
        custom = {"fillOpacity": 10, "lineWidth": 1, "showPoints": "never"}
        if panel.stacked:
            custom["stacking"] = {"mode": "normal", "group": "A"}
    elif panel.kind == "stat":
        options = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value", "graphMode": "area"}
    else:
        options = {"reduceOptions": {"calcs": ["lastNotNull"]}, "orientation": "horizontal"}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {"defaults": {"unit": panel.unit, "custom": custom}, "overrides": []},
        "options": options,
        "targets": targets,
    }


def quantiles(histogram: str, selector: str, by: str = "") -> tuple[Query, ...]:
    group = ", ".join(filter(None, ("le", by)))
    suffix = f" {{{{{by}}}}}" if by else ""
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({group}) (rate({histogram}_bucket{{{selector}}}[{RATE}])))",
            f"p{int(q * 100)}{suffix}",
        )
        for q in (0.5, 0.99)
    )


def grpc_server_row(job: str) -> tuple[str, list[Panel]]:
    """Rate, errors and duration of the service's own RPCs (the standard grpc_server_* series)."""
    on_job = f'job="{job}"'
    handled = f"grpc_server_handled_total{{{on_job}}}"
    errors = f'grpc_server_handled_total{{{on_job},grpc_code=~"{SERVER_ERRORS}"}}'
    return (
        "gRPC server (RED)",
        [
            Panel(
                "Requests by method",
                "RPCs completed per second, by method.",
                (Query(f"sum by (grpc_method) (rate({handled}[{RATE}]))", "{{grpc_method}}"),),
                unit="reqps",
                width=8,
                stacked=True,
            ),
            Panel(
                "Server error ratio",
                "Share of RPCs that ended with a code meaning server trouble (UNKNOWN, INTERNAL, "
                "UNAVAILABLE, DEADLINE_EXCEEDED, DATA_LOSS, UNIMPLEMENTED). The alert "
                "WhatLeadGrpcErrorRatioHigh fires over 5%." + ABSENT_IS_ZERO,
                (
                    Query(
                        f"(sum(rate({errors}[{RATE}])) or vector(0)) / sum(rate({handled}[{RATE}]))",
                        "server errors",
                    ),
                ),
                unit="percentunit",
                width=8,
            ),
            Panel(
                "Answers other than OK, by code",
                "Every code other than OK, by method: callers' mistakes (INVALID_ARGUMENT, NOT_FOUND, "
                "RESOURCE_EXHAUSTED...) as well as server errors." + ABSENT_IS_ZERO,
                (
                    Query(
                        f"sum by (grpc_method, grpc_code) "
                        f'(rate(grpc_server_handled_total{{{on_job},grpc_code!="OK"}}'
                        f"[{RATE}])) or vector(0)",
                        "{{grpc_method}} {{grpc_code}}",
                    ),
                ),
                unit="reqps",
                width=8,
            ),
            Panel(
                "Duration by method (p50, p99)",
                "Time to handle an RPC, from the grpc_server_handling_seconds histogram. NaN while a method "
                "had no call in the interval.",
                quantiles("grpc_server_handling_seconds", on_job, "grpc_method"),
                unit="s",
                width=12,
            ),
            Panel(
                "RPCs in progress",
                "Started minus completed RPCs: calls being handled now, long-lived streams included "
                "(saturation).",
                (
                    Query(
                        f"sum(grpc_server_started_total{{{on_job}}}) - "
                        f"sum(grpc_server_handled_total{{{on_job}}})",
                        "in progress",
                    ),
                ),
                width=12,
            ),
        ],
    )


def grpc_client_panel(job: str) -> Panel:
    return Panel(
        "Calls to other services",
        "RPCs this service made to others, by service, method and code (the standard grpc_client_* series)."
        + ABSENT_IS_ZERO,
        (
            Query(
                f"sum by (grpc_service, grpc_method, grpc_code) "
                f'(rate(grpc_client_handled_total{{job="{job}"}}'
                f"[{RATE}])) or vector(0)",
                "{{grpc_service}}/{{grpc_method}} {{grpc_code}}",
            ),
        ),
        unit="reqps",
        width=12,
    )


def messaging_row(job: str, *, outbox: bool, consumers: bool) -> tuple[str, list[Panel]]:
    """The service's JetStream side: its outbox (what it publishes) and its durable consumers."""
    on_job = f'job="{job}"'
    panels: list[Panel] = []
    if outbox:
        panels += [
            Panel(
                "Outbox: oldest unpublished event",
                "Age of the oldest outbox row the relay has not published yet (0 when none). The alert "
                "WhatLeadOutboxBacklogOld fires over 2 minutes.",
                (Query(f"max by (service) (whatlead_outbox_oldest_age_seconds{{{on_job}}})", "{{service}}"),),
                unit="s",
                width=8,
            ),
            Panel(
                "Outbox: pending rows and publish rate",
                "Rows waiting for the relay, and events published per second.",
                (
                    Query(f"max by (service) (whatlead_outbox_pending{{{on_job}}})", "pending"),
                    Query(
                        f"sum(rate(whatlead_outbox_published_total{{{on_job}}}[{RATE}])) or vector(0)",
                        "published/s",
                    ),
                ),
                width=8,
            ),
        ]
    if consumers:
        panels += [
            Panel(
                "Consumer lag",
                "Events waiting in JetStream for each durable consumer (num_pending) and delivered but not "
                "yet acked. The alert WhatLeadConsumerLagging fires over 1000 for 10 minutes.",
                (
                    Query(
                        f"max by (consumer) (whatlead_consumer_pending_messages{{{on_job}}})",
                        "{{consumer}} pending",
                    ),
                    Query(
                        f"max by (consumer) (whatlead_consumer_ack_pending_messages{{{on_job}}})",
                        "{{consumer}} ack pending",
                    ),
                ),
                width=8,
            ),
            Panel(
                "Events handled and failed",
                "Events applied per second by consumer, and failures (retried, then parked)."
                + ABSENT_IS_ZERO,
                (
                    Query(
                        f"sum by (consumer) (rate(whatlead_events_handled_total{{{on_job}}}[{RATE}]))",
                        "{{consumer}}",
                    ),
                    Query(
                        f"sum by (consumer) (rate(whatlead_events_failed_total{{{on_job}}}[{RATE}])) or "
                        "vector(0)",
                        "failed {{consumer}}",
                    ),
                ),
                unit="ops",
                width=12,
            ),
        ]
    panels.append(
        Panel(
            "Stores up",
            "1 while the store (database, Redis, NATS) answers, 0 during an outage.",
            (Query(f"min by (store) (whatlead_store_up{{{on_job}}})", "{{store}}"),),
            width=12 if consumers else 8,
        )
    )
    return "Messaging and stores (saturation)", panels


def overview() -> Dashboard:
    rate = RATE
    return Dashboard(
        uid="whatlead-overview",
        title="WhatLead / Overview",
        description="Messages from intent to reply, the Gate's decisions, the fleet's health and the time "
        "to send.",
        rows=[
            (
                "Messages",
                [
                    Panel(
                        "Message funnel (over the time range)",
                        "Messages at each stage over the dashboard's time range, each fact counted once by "
                        "ops: submitted, approved, sent, delivered, read, replied; failed beside them.",
                        (Query("sum by (stage) (increase(whatlead_funnel_total[$__range]))", "{{stage}}"),),
                        kind="bargauge",
                        width=8,
                    ),
                    Panel(
                        "Funnel stages per second",
                        "The same stages as a rate over time.",
                        (Query(f"sum by (stage) (rate(whatlead_funnel_total[{rate}]))", "{{stage}}"),),
                        unit="ops",
                        width=16,
                    ),
                    Panel(
                        "Decisions by outcome and reason",
                        "The Gate's decisions per second: approved (reason none), queued, blocked or dropped "
                        "with the verdict's reason code.",
                        (
                            Query(
                                f"sum by (outcome, reason) (rate(whatlead_gate_decisions_total[{rate}]))",
                                "{{outcome}} {{reason}}",
                            ),
                        ),
                        unit="ops",
                        stacked=True,
                    ),
                    Panel(
                        "Sends by provider",
                        "Messages the providers accepted per second (the Executor's SENT outcomes).",
                        (
                            Query(
                                "sum by (provider) (rate(whatlead_executor_executions_total"
                                f'{{outcome="SENT"}}[{rate}]))',
                                "{{provider}}",
                            ),
                        ),
                        unit="ops",
                        stacked=True,
                    ),
                    Panel(
                        "Time to send (p50, p95, p99)",
                        "From an intent's creation to the provider's acceptance of its message (ops' "
                        "whatlead_ops_time_to_send_seconds). NaN while nothing was sent in the interval.",
                        tuple(
                            Query(
                                f"histogram_quantile({q}, sum by (le) "
                                f"(rate(whatlead_ops_time_to_send_seconds_bucket[{rate}])))",
                                f"p{int(q * 100)}",
                            )
                            for q in (0.5, 0.95, 0.99)
                        ),
                        unit="s",
                    ),
                    Panel(
                        "Intents queued at the Gate",
                        "Intents waiting QUEUED for a number that may send, as of the Gate's last pass. The "
                        "alert WhatLeadGateQueueGrowing fires when over 100 and growing for 30 minutes.",
                        (Query("max(whatlead_gate_queued_intents)", "queued"),),
                    ),
                ],
            ),
            (
                "Fleet",
                [
                    Panel(
                        "Instances by health",
                        "Numbers per health as of Reputation's last periodic pass (UNHEALTHY ones are not "
                        "chosen).",
                        (Query("max by (health) (whatlead_reputation_instances_by_health)", "{{health}}"),),
                        width=8,
                        stacked=True,
                    ),
                    Panel(
                        "Instances by warm-up phase",
                        "Numbers per warm-up phase as of Reputation's last periodic pass.",
                        (Query("max by (phase) (whatlead_reputation_instances_by_phase)", "{{phase}}"),),
                        width=8,
                        stacked=True,
                    ),
                    Panel(
                        "Bans and time-locks (over the time range)",
                        "Numbers banned and reach-out time-locks (WhatsApp 463) Reputation recorded over the "
                        "dashboard's time range." + ABSENT_IS_ZERO,
                        (
                            Query(
                                'sum(increase(whatlead_reputation_signals_total{kind="BANNED"}[$__range])) '
                                "or vector(0)",
                                "banned",
                            ),
                            Query(
                                'sum(increase(whatlead_reputation_signals_total{kind="REACHOUT_TIMELOCKED"}'
                                "[$__range])) or vector(0)",
                                "time-locked",
                            ),
                        ),
                        kind="stat",
                        width=8,
                    ),
                    Panel(
                        "Jobs by state",
                        "The Executor's jobs per state, from its database. NEEDS_REVIEW waits for a person "
                        "(alert WhatLeadJobsNeedReviewGrowing).",
                        (Query("max by (state) (whatlead_executor_jobs)", "{{state}}"),),
                    ),
                    Panel(
                        "Active pauses (kill switches)",
                        "Pauses in force per scope, and how long the oldest has held (alert "
                        "WhatLeadKillSwitchLeftOn over 4 hours).",
                        (
                            Query("max by (scope) (whatlead_ops_paused_scopes)", "{{scope}} paused"),
                            Query(
                                "max by (scope) (whatlead_ops_oldest_pause_age_seconds) / 3600",
                                "{{scope}} oldest (h)",
                            ),
                        ),
                    ),
                ],
            ),
            (
                "Services",
                [
                    Panel(
                        "Services up",
                        "Replicas Prometheus scrapes, per service (job).",
                        (Query('sum by (job) (up{job=~"gate|executor|reputation|ops|gateway"})', "{{job}}"),),
                        kind="stat",
                    ),
                    Panel(
                        "Server error ratio by service",
                        "Share of each service's RPCs that ended with a server-trouble code."
                        + ABSENT_IS_ZERO,
                        (
                            Query(
                                "(sum by (job) (rate(grpc_server_handled_total"
                                f'{{grpc_code=~"{SERVER_ERRORS}"}}[{rate}])) '
                                f"or (sum by (job) (rate(grpc_server_handled_total[{rate}])) * 0)) / sum by "
                                f"(job) (rate(grpc_server_handled_total[{rate}]))",
                                "{{job}}",
                            ),
                        ),
                        unit="percentunit",
                    ),
                ],
            ),
        ],
    )


def gate() -> Dashboard:
    job = "gate"
    return Dashboard(
        uid="whatlead-gate",
        title="WhatLead / Gate",
        description="The Gate: intents submitted and decided, its queue, batching, and its calls to "
        "Reputation and ops.",
        job=job,
        rows=[
            grpc_server_row("$job"),
            (
                "Decisions",
                [
                    Panel(
                        "Decisions by outcome and reason",
                        "Approved, queued, blocked and dropped intents per second, with the verdict's "
                        "reason.",
                        (
                            Query(
                                f"sum by (outcome, reason) "
                                f'(rate(whatlead_gate_decisions_total{{job="$job"}}[{RATE}]))',
                                "{{outcome}} {{reason}}",
                            ),
                        ),
                        unit="ops",
                        stacked=True,
                    ),
                    Panel(
                        "Queued intents",
                        "Intents waiting QUEUED as of the last pass (saturation of the organizations' "
                        "numbers).",
                        (Query('max(whatlead_gate_queued_intents{job="$job"})', "queued"),),
                    ),
                    Panel(
                        "Batch sizes (p50, p99)",
                        "Items per coalesced batch, by stage: 1 means nothing was batched; near the top "
                        "bucket means the Gate is saturated.",
                        quantiles("whatlead_gate_batch_size", 'job="$job"', "stage"),
                    ),
                    Panel(
                        "Writes refused by the database",
                        "Units of work the database refused for their data (answered INVALID_ARGUMENT).",
                        (
                            Query(
                                f'sum(rate(whatlead_gate_refused_writes_total{{job="$job"}}[{RATE}]))',
                                "refused",
                            ),
                        ),
                        unit="ops",
                    ),
                    grpc_client_panel("$job"),
                ],
            ),
            messaging_row("$job", outbox=True, consumers=True),
        ],
    )


def executor() -> Dashboard:
    job = "executor"
    on_job = 'job="$job"'
    return Dashboard(
        uid="whatlead-executor",
        title="WhatLead / Executor",
        description="The Executor: sends by provider and outcome, their duration, jobs by state and in "
        "flight.",
        job=job,
        rows=[
            grpc_server_row("$job"),
            (
                "Sending",
                [
                    Panel(
                        "Executions by provider and outcome",
                        "What each claimed job's execution did per second: SENT, RETRY, FAILED, "
                        "NEEDS_REVIEW, AMBIGUOUS, PAUSED...",
                        (
                            Query(
                                "sum by (provider, outcome) "
                                f"(rate(whatlead_executor_executions_total{{{on_job}}}[{RATE}]))",
                                "{{provider}} {{outcome}}",
                            ),
                        ),
                        unit="ops",
                        stacked=True,
                    ),
                    Panel(
                        "Execution time by provider (p50, p99)",
                        "From claim to recorded outcome of one job, mostly the provider's answer time.",
                        quantiles("whatlead_executor_execution_seconds", on_job, "provider"),
                        unit="s",
                    ),
                    Panel(
                        "Jobs by state",
                        "Jobs per state from the database (NEEDS_REVIEW waits for a person).",
                        (Query(f"max by (state) (whatlead_executor_jobs{{{on_job}}})", "{{state}}"),),
                    ),
                    Panel(
                        "Jobs in flight",
                        "Jobs being executed right now, all replicas together (saturation of the workers).",
                        (Query(f"sum(whatlead_executor_in_flight{{{on_job}}})", "in flight"),),
                    ),
                    Panel(
                        "Failed after send and reconciliations",
                        "Sends the provider later reported failed, by kind (reachout_timelock = WhatsApp "
                        "463), and reconciliations of unknown outcomes by finding." + ABSENT_IS_ZERO,
                        (
                            Query(
                                "sum by (kind) "
                                f"(rate(whatlead_executor_failed_after_send_total{{{on_job}}}[{RATE}])) or "
                                "vector(0)",
                                "failed after send {{kind}}",
                            ),
                            Query(
                                "sum by (finding) "
                                f"(rate(whatlead_executor_reconciled_total{{{on_job}}}[{RATE}])) or "
                                "vector(0)",
                                "reconciled {{finding}}",
                            ),
                        ),
                        unit="ops",
                    ),
                    Panel(
                        "Leases expired and lost",
                        "Jobs whose worker died or hung (lease expired) and outcomes not written because "
                        "another worker took the job over.",
                        (
                            Query(
                                f"sum(rate(whatlead_executor_leases_expired_total{{{on_job}}}[{RATE}]))",
                                "expired",
                            ),
                            Query(
                                f"sum(rate(whatlead_executor_lease_lost_total{{{on_job}}}[{RATE}]))", "lost"
                            ),
                        ),
                        unit="ops",
                    ),
                ],
            ),
            messaging_row("$job", outbox=True, consumers=True),
        ],
    )


def reputation() -> Dashboard:
    job = "reputation"
    on_job = 'job="$job"'
    return Dashboard(
        uid="whatlead-reputation",
        title="WhatLead / Reputation",
        description="Reputation: the instance registry, signals, health and warm-up of the numbers.",
        job=job,
        rows=[
            grpc_server_row("$job"),
            (
                "Signals and health",
                [
                    Panel(
                        "Signals by kind",
                        "Facts recorded per second (each once), by kind: sent, delivered, read, replied, "
                        "BANNED, REACHOUT_TIMELOCKED...",
                        (
                            Query(
                                "sum by (kind) "
                                f"(rate(whatlead_reputation_signals_total{{{on_job}}}[{RATE}]))",
                                "{{kind}}",
                            ),
                        ),
                        unit="ops",
                        stacked=True,
                    ),
                    Panel(
                        "Cooldowns started by reason",
                        "Cooldowns started (or extended) per second, by reason." + ABSENT_IS_ZERO,
                        (
                            Query(
                                "sum by (reason) "
                                f"(rate(whatlead_reputation_cooldowns_started_total{{{on_job}}}[{RATE}])) or "
                                "vector(0)",
                                "{{reason}}",
                            ),
                        ),
                        unit="ops",
                    ),
                    Panel(
                        "Instances by health",
                        "Numbers per health as of the last periodic pass.",
                        (
                            Query(
                                f"max by (health) (whatlead_reputation_instances_by_health{{{on_job}}})",
                                "{{health}}",
                            ),
                        ),
                        stacked=True,
                    ),
                    Panel(
                        "Instances by warm-up phase",
                        "Numbers per warm-up phase as of the last periodic pass.",
                        (
                            Query(
                                f"max by (phase) (whatlead_reputation_instances_by_phase{{{on_job}}})",
                                "{{phase}}",
                            ),
                        ),
                        stacked=True,
                    ),
                    Panel(
                        "Evaluations",
                        "Reputation evaluations per second, by trigger and whether the health changed.",
                        (
                            Query(
                                "sum by (trigger, changed) "
                                f"(rate(whatlead_reputation_evaluations_total{{{on_job}}}[{RATE}]))",
                                "{{trigger}} changed={{changed}}",
                            ),
                        ),
                        unit="ops",
                    ),
                    Panel(
                        "Open WatchInstance streams",
                        "Streams open on the registry (saturation of long-lived RPCs).",
                        (Query(f"sum(whatlead_reputation_instance_watchers{{{on_job}}})", "streams"),),
                    ),
                    grpc_client_panel("$job"),
                ],
            ),
            messaging_row("$job", outbox=True, consumers=True),
        ],
    )


def ops() -> Dashboard:
    job = "ops"
    on_job = 'job="$job"'
    return Dashboard(
        uid="whatlead-ops",
        title="WhatLead / Ops",
        description="Ops: the timeline of every event, the funnel, time to send, kill switches and API keys.",
        job=job,
        rows=[
            grpc_server_row("$job"),
            (
                "Timeline and controls",
                [
                    Panel(
                        "Timeline facts by context",
                        "Events recorded in the timeline per second (each once), by the publishing context.",
                        (
                            Query(
                                "sum by (context) "
                                f"(rate(whatlead_ops_timeline_facts_total{{{on_job}}}[{RATE}]))",
                                "{{context}}",
                            ),
                        ),
                        unit="ops",
                        stacked=True,
                    ),
                    Panel(
                        "Funnel stages per second",
                        "Messages reaching each stage, counted from the timeline.",
                        (
                            Query(
                                f"sum by (stage) (rate(whatlead_funnel_total{{{on_job}}}[{RATE}]))",
                                "{{stage}}",
                            ),
                        ),
                        unit="ops",
                    ),
                    Panel(
                        "Time to send (p50, p99)",
                        "From an intent's creation to the provider's acceptance.",
                        quantiles("whatlead_ops_time_to_send_seconds", on_job),
                        unit="s",
                    ),
                    Panel(
                        "Active pauses and the oldest's age",
                        "Pauses in force per scope, and the age of the oldest in hours (0 when none).",
                        (
                            Query(
                                f"max by (scope) (whatlead_ops_paused_scopes{{{on_job}}})", "{{scope}} paused"
                            ),
                            Query(
                                f"max by (scope) (whatlead_ops_oldest_pause_age_seconds{{{on_job}}}) / 3600",
                                "{{scope}} oldest (h)",
                            ),
                        ),
                    ),
                    Panel(
                        "Open WatchIntents streams",
                        "Streams open (saturation of long-lived RPCs) and changes written to them per "
                        "second.",
                        (
                            Query(f"sum(whatlead_ops_intent_watchers{{{on_job}}})", "streams"),
                            Query(
                                f"sum(rate(whatlead_ops_intent_watch_deliveries_total{{{on_job}}}[{RATE}]))",
                                "deliveries/s",
                            ),
                        ),
                    ),
                ],
            ),
            messaging_row("$job", outbox=False, consumers=True),
        ],
    )


def gateway() -> Dashboard:
    job = "gateway"
    on_job = 'job="$job"'
    webhooks = f"whatlead_gateway_webhooks_total{{{on_job}}}"
    return Dashboard(
        uid="whatlead-gateway",
        title="WhatLead / Gateway",
        description="The gateway: providers' webhooks (rate, refusals, publish time) and realtime sockets.",
        job=job,
        rows=[
            (
                "Webhooks (RED)",
                [
                    Panel(
                        "Webhooks by provider and status",
                        "Webhooks answered per second, by provider and HTTP status.",
                        (
                            Query(
                                f"sum by (provider, status) (rate({webhooks}[{RATE}]))",
                                "{{provider}} {{status}}",
                            ),
                        ),
                        unit="reqps",
                        stacked=True,
                        width=8,
                    ),
                    Panel(
                        "Webhooks refused or failed",
                        "Share of webhooks answered 4xx (refused: signature, format, size) and 5xx (the "
                        "gateway could not publish)." + ABSENT_IS_ZERO,
                        (
                            Query(
                                f'(sum(rate(whatlead_gateway_webhooks_total{{{on_job},status=~"4.."}}'
                                f"[{RATE}])) or vector(0)) / sum(rate({webhooks}[{RATE}]))",
                                "4xx",
                            ),
                            Query(
                                f'(sum(rate(whatlead_gateway_webhooks_total{{{on_job},status=~"5.."}}'
                                f"[{RATE}])) or vector(0)) / sum(rate({webhooks}[{RATE}]))",
                                "5xx",
                            ),
                        ),
                        unit="percentunit",
                        width=8,
                    ),
                    Panel(
                        "Signature failures by cause",
                        "Webhooks refused 401, by provider and cause (missing, mismatch, expired...)."
                        + ABSENT_IS_ZERO,
                        (
                            Query(
                                "sum by (provider, cause) "
                                f"(rate(whatlead_gateway_verification_failures_total{{{on_job}}}[{RATE}])) "
                                "or vector(0)",
                                "{{provider}} {{cause}}",
                            ),
                        ),
                        unit="reqps",
                        width=8,
                    ),
                    Panel(
                        "Publish time to JetStream (p50, p99)",
                        "Time to publish a webhook's events before answering the provider.",
                        quantiles("whatlead_gateway_publish_seconds", on_job),
                        unit="s",
                    ),
                    Panel(
                        "Webhooks by kind of event",
                        "Webhooks answered per second by the canonical kind of their events.",
                        (Query(f"sum by (kind) (rate({webhooks}[{RATE}]))", "{{kind}}"),),
                        unit="reqps",
                    ),
                ],
            ),
            (
                "Realtime and stores (saturation)",
                [
                    Panel(
                        "Open realtime sockets",
                        "/v1/realtime WebSockets open, all replicas together.",
                        (Query(f"sum(whatlead_gateway_realtime_sockets{{{on_job}}})", "sockets"),),
                        width=8,
                    ),
                    Panel(
                        "Stores up",
                        "1 while the store answers, 0 during an outage.",
                        (Query(f"min by (store) (whatlead_store_up{{{on_job}}})", "{{store}}"),),
                        width=8,
                    ),
                    grpc_client_panel("$job"),
                ],
            ),
        ],
    )


DASHBOARDS = (overview, gate, executor, reputation, ops, gateway)


def rendered() -> dict[str, str]:
    """Each dashboard's file name and JSON text."""
    files = {}
    for make in DASHBOARDS:
        dashboard = make()
        files[f"{dashboard.uid}.json"] = json.dumps(dashboard.to_json(), indent=2, ensure_ascii=False) + "\n"
    return files


def main() -> None:
    OUTPUT.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (OUTPUT / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
