"""`whatlead reputation <instance_id>`: an instance's score, health, warm-up phase and cooldown, and why
(the main terms of its score and the alerts raised), as the reputation service explains its last change."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from libs.cli.common import DEADLINE_SECONDS, Commands, address, enum_label
from whatlead.common.v1 import common_pb2
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

R = reputation_pb2
_RAISED = (R.ALERT_LEVEL_REVIEW, R.ALERT_LEVEL_PAUSE)


def reputation() -> reputation_pb2_grpc.ReputationServiceStub:
    return reputation_pb2_grpc.ReputationServiceStub(grpc.insecure_channel(address("reputation")))


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
        reputation_pb2.GetReputationRequest(organization_id=args.org, instance_id=args.instance_id),
        timeout=DEADLINE_SECONDS,
    )
    print(render(response, datetime.now(UTC)))
    return 0


def register(commands: Commands) -> None:
    command = commands.add_parser(
        "reputation", help="an instance's score, health, phase and cooldown, and why (reputation service)"
    )
    command.add_argument("instance_id", help="the instance to explain")
    command.set_defaults(run=show_reputation)
