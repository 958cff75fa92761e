"""`whatlead reputation <instance_id>` (or `reputation show <instance_id>`): an instance's score, health,
warm-up phase and cooldown, and why (the main terms of its score and the alerts raised), as the reputation
service explains its last change.
`whatlead reputation plan <instance_id>`: a number's warm-up plan for a day and how far it got;
`whatlead reputation warmup-settings [--hours 08:00-20:00 --time-zone ... --friendly +55...]`: the
organization's sending hours, time zone and friendly numbers (reputation service)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp

from libs.cli.common import Commands, channel, deadline, enum_label, json_output, output
from whatlead.common.v1 import common_pb2
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

R = reputation_pb2
_RAISED = (R.ALERT_LEVEL_REVIEW, R.ALERT_LEVEL_PAUSE)
# `whatlead reputation <instance_id>` stands for `whatlead reputation show <instance_id>`.
ACTIONS = ("show", "plan", "warmup-settings")
DEFAULT_ACTION = "show"


def reputation() -> reputation_pb2_grpc.ReputationServiceStub:
    return reputation_pb2_grpc.ReputationServiceStub(channel("reputation"))


def _when(stamp: Timestamp, now: datetime) -> str:
    at = stamp.ToDatetime(tzinfo=UTC)
    seconds = int((at - now).total_seconds())
    relative = f"in {_span(seconds)}" if seconds >= 0 else f"{_span(-seconds)} ago"
    return f"{at:%Y-%m-%d %H:%M:%S} UTC ({relative})"


def _span(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def render(response: reputation_pb2.GetReputationResponse, now: datetime) -> str:
    """What the command prints: the state, then the explanation's terms that moved the score and the alerts
    at review or pause level."""
    state, why = response.reputation, response.explanation
    explained = response.HasField("explanation")
    health = enum_label(R.HealthStatus, state.health)
    if explained and why.health_reason:
        health += f"  ({why.health_reason})"
    phase = enum_label(R.WarmupPhase, state.phase)
    if explained and why.phase.reason:
        phase += f"  ({enum_label(R.PhaseChange, why.phase.change)}: {why.phase.reason})"
    lines = [
        f"instance   {state.instance_id}",
        f"score      {state.score}" + (f"  (was {why.previous_score})" if explained else ""),
        f"health     {health}",
        f"phase      {phase}",
    ]
    cooling = state.HasField("cooldown_until") and state.cooldown_until.ToDatetime(tzinfo=UTC) > now
    if cooling:
        reason = enum_label(R.CooldownReason, state.cooldown_reason)
        cause = why.cooldown.cause if explained and why.HasField("cooldown") else ""
        lines.append(
            f"cooldown   until {_when(state.cooldown_until, now)}  {reason}" + (f": {cause}" if cause else "")
        )
    else:
        lines.append("cooldown   none")
    if state.alerts:
        lines.append("alerts     " + ", ".join(enum_label(R.ReputationAlert, a) for a in state.alerts))
    if state.HasField("evaluated_at"):
        lines.append(f"evaluated  {_when(state.evaluated_at, now)}")
    if not explained:
        lines.append("\nnot evaluated from its signals yet: the first state of a new number")
        return "\n".join(lines)
    lines.append(f"\nwhy (last change: {why.trigger}, rules v{why.evaluation_version})")
    lines.append("  score terms")
    for term in why.terms:
        if term.contribution or term.name == "baseline":
            measured = f"  measured {_number(term.measured)}" if term.HasField("measured") else ""
            detail = f"  {term.detail}" if term.detail else ""
            lines.append(f"    {term.contribution:+4d}  {term.name}{measured}{detail}")
    lines.append(f"    ----  {why.score}")
    raised = [c for c in why.alert_checks if c.level in _RAISED]
    if raised:
        lines.append("  alerts raised")
        for check in raised:
            side = "<" if check.lower_is_worse else ">="
            pause = f", pause {_number(check.pause)}" if check.HasField("pause") else ""
            measured = _number(check.measured) if check.HasField("measured") else "-"
            lines.append(
                f"    {enum_label(R.ReputationAlert, check.alert)}  {check.metric} over the "
                f"{check.window.lower()}: {measured} {side} review {_number(check.review)}{pause} "
                f"(n={check.volume})  -> {enum_label(R.AlertLevel, check.level)}"
            )
    if why.HasField("cooldown"):
        cooldown = why.cooldown
        restriction = (
            f", {enum_label(common_pb2.RestrictionKind, cooldown.restriction_kind)}"
            if cooldown.restriction_kind
            else ""
        )
        lines.append(
            f"  cooldown started: {enum_label(R.CooldownReason, cooldown.reason)} step {cooldown.step}"
            f"{restriction}, until {_when(cooldown.until, now)}"
        )
    elif why.cooldown_note:
        lines.append(f"  cooldown: {why.cooldown_note}")
    return "\n".join(lines)


def show_reputation(args: argparse.Namespace) -> int:
    response = reputation().GetReputation(
        reputation_pb2.GetReputationRequest(organization_id=args.org, instance_id=args.id),
        timeout=deadline(),
    )
    output(response, lambda: render(response, datetime.now(UTC)))
    return 0


def show_plan(args: argparse.Namespace) -> int:
    plan = (
        reputation()
        .GetWarmupPlan(
            reputation_pb2.GetWarmupPlanRequest(organization_id=args.org, instance_id=args.id, day=args.day),
            timeout=deadline(),
        )
        .plan
    )
    if args.json or json_output():
        output(plan)
        return 0
    zone = ZoneInfo(plan.time_zone)

    def local(stamp: Timestamp) -> str:
        return stamp.ToDatetime(tzinfo=UTC).astimezone(zone).strftime("%H:%M")

    phase = enum_label(reputation_pb2.WarmupPhase, plan.phase)
    print(
        f"warm-up plan of {plan.instance_id} for {plan.day} (day {plan.day_number}, {phase}), "
        f"{local(plan.window_start)}-{local(plan.window_end)} {plan.time_zone}"
    )
    if plan.note:
        print(f"  {plan.note}")
    p = plan.progress
    print(
        f"  {len(plan.conversations)} conversations, {p.total} messages: {p.planned} planned, "
        f"{p.submitted} submitted, {p.sent} sent, {p.failed} failed, {p.skipped} skipped"
    )
    for conversation in plan.conversations:
        partner = f"+{conversation.partner_phone}" + (" (friendly)" if conversation.friendly else "")
        status = enum_label(reputation_pb2.WarmupMessageStatus, conversation.status)
        print(f"  {local(conversation.at)}  with {partner:<28} {status}")
        for message in conversation.messages:
            role = enum_label(reputation_pb2.WarmupMessageRole, message.role).lower()
            line = (
                f"      {local(message.due_at)} {role:<6} "
                f"{enum_label(reputation_pb2.WarmupMessageStatus, message.status):<9} {message.text}"
            )
            if message.reason:
                line += f"  ({message.reason})"
            print(line)
    return 0


def warmup_settings(args: argparse.Namespace) -> int:
    stub = reputation()
    if args.hours is None and args.time_zone is None and args.friendly is None:
        response = stub.GetWarmupSettings(
            reputation_pb2.GetWarmupSettingsRequest(organization_id=args.org), timeout=deadline()
        )
        output(response.settings)
        return 0
    # A replacement: what is not given keeps its current value.
    current = stub.GetWarmupSettings(
        reputation_pb2.GetWarmupSettingsRequest(organization_id=args.org), timeout=deadline()
    ).settings
    start, end = current.sending_hours_start, current.sending_hours_end
    if args.hours is not None:
        start, _, end = args.hours.partition("-")
    friendly = (
        current.friendly_numbers if args.friendly is None else [p for p in args.friendly.split(",") if p]
    )
    changed = stub.SetWarmupSettings(
        reputation_pb2.SetWarmupSettingsRequest(
            organization_id=args.org,
            settings=reputation_pb2.WarmupSettings(
                sending_hours_start=start.strip(),
                sending_hours_end=end.strip(),
                time_zone=args.time_zone if args.time_zone is not None else current.time_zone,
                friendly_numbers=list(friendly),
            ),
        ),
        timeout=deadline(),
    )
    output(changed.settings)
    return 0


def register(commands: Commands) -> None:
    group = commands.add_parser(
        "reputation", help="an instance's score, health, phase, cooldown and why; warm-up plans, settings"
    ).add_subparsers(dest="action", required=True)
    shown = group.add_parser("show", help="score, health, phase and cooldown, and why (the default action)")
    shown.add_argument("id", help="instance id")
    shown.set_defaults(run=show_reputation)
    plan = group.add_parser("plan", help="a number's warm-up plan and its progress")
    plan.add_argument("id", help="instance id")
    plan.add_argument("--day", default="", help="the organization's local date, YYYY-MM-DD (default: today)")
    plan.add_argument(
        "--json", action="store_true", help="the whole plan as JSON (as --output json, indented)"
    )
    plan.set_defaults(run=show_plan)
    settings = group.add_parser("warmup-settings", help="show or change the organization's warm-up settings")
    settings.add_argument("--hours", help="sending hours, local time, e.g. 08:00-20:00")
    settings.add_argument("--time-zone", help="IANA time zone, e.g. America/Sao_Paulo")
    settings.add_argument("--friendly", help='friendly numbers, comma-separated E.164 ("" clears them)')
    settings.set_defaults(run=warmup_settings)
