"""`whatlead reputation plan <instance_id>`: a number's warm-up plan for a day and how far it got;
`whatlead reputation warmup-settings [--hours 08:00-20:00 --time-zone ... --friendly +55...]`: the
organization's sending hours, time zone and friendly numbers (reputation service)."""

from __future__ import annotations

import argparse
from datetime import UTC
from zoneinfo import ZoneInfo

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from libs.cli.common import DEADLINE_SECONDS, Commands, address, enum_label, show
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc


def reputation() -> reputation_pb2_grpc.ReputationServiceStub:
    return reputation_pb2_grpc.ReputationServiceStub(grpc.insecure_channel(address("reputation")))


def show_plan(args: argparse.Namespace) -> int:
    plan = (
        reputation()
        .GetWarmupPlan(
            reputation_pb2.GetWarmupPlanRequest(organization_id=args.org, instance_id=args.id, day=args.day),
            timeout=DEADLINE_SECONDS,
        )
        .plan
    )
    if args.json:
        show(plan)
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
            reputation_pb2.GetWarmupSettingsRequest(organization_id=args.org), timeout=DEADLINE_SECONDS
        )
        show(response.settings)
        return 0
    # A replacement: what is not given keeps its current value.
    current = stub.GetWarmupSettings(
        reputation_pb2.GetWarmupSettingsRequest(organization_id=args.org), timeout=DEADLINE_SECONDS
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
        timeout=DEADLINE_SECONDS,
    )
    show(changed.settings)
    return 0


def register(commands: Commands) -> None:
    group = commands.add_parser("reputation", help="reputation: warm-up plans and settings").add_subparsers(
        dest="action", required=True
    )
    plan = group.add_parser("plan", help="a number's warm-up plan and its progress")
    plan.add_argument("id", help="instance id")
    plan.add_argument("--day", default="", help="the organization's local date, YYYY-MM-DD (default: today)")
    plan.add_argument("--json", action="store_true", help="the whole plan as JSON")
    plan.set_defaults(run=show_plan)
    settings = group.add_parser("warmup-settings", help="show or change the organization's warm-up settings")
    settings.add_argument("--hours", help="sending hours, local time, e.g. 08:00-20:00")
    settings.add_argument("--time-zone", help="IANA time zone, e.g. America/Sao_Paulo")
    settings.add_argument("--friendly", help='friendly numbers, comma-separated E.164 ("" clears them)')
    settings.set_defaults(run=warmup_settings)
