"""`whatlead pause | resume | controls`: the kill-switch (ops service)."""

from __future__ import annotations

import argparse

from libs.cli.common import Commands, channel, deadline, enum_label, enum_value, moment, output, when
from libs.rpc.convert import to_timestamp
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

SCOPES = ("instance", "organization", "campaign")
REASONS = "manual | incident | provider_outage | compliance"


def ops() -> ops_pb2_grpc.OpsServiceStub:
    return ops_pb2_grpc.OpsServiceStub(channel("ops"))


def _scope(args: argparse.Namespace) -> tuple[ops_pb2.ControlScope.ValueType, str]:
    if args.scope != "organization" and not args.id:
        raise SystemExit(f"error: whatlead {args.command} {args.scope}: give the {args.scope} id")
    return enum_value(ops_pb2.ControlScope, args.scope), args.id or ""


def pause(args: argparse.Namespace) -> int:
    scope, scope_id = _scope(args)
    response = ops().PauseExecution(
        ops_pb2.PauseExecutionRequest(
            organization_id=args.org,
            scope=scope,
            scope_id=scope_id,
            reason=enum_value(ops_pb2.ControlReason, args.reason),
            note=args.note,
            paused_until=to_timestamp(moment(args.until)) if args.until else None,
            actor=args.actor,
        ),
        timeout=deadline(),
    )
    output(response.control, lambda: control_line(response.control))
    return 0


def resume(args: argparse.Namespace) -> int:
    scope, scope_id = _scope(args)
    response = ops().ResumeExecution(
        ops_pb2.ResumeExecutionRequest(
            organization_id=args.org,
            scope=scope,
            scope_id=scope_id,
            reason=enum_value(ops_pb2.ControlReason, args.reason),
            note=args.note,
            actor=args.actor,
        ),
        timeout=deadline(),
    )
    output(response.control, lambda: control_line(response.control))
    return 0


def list_controls(args: argparse.Namespace) -> int:
    token = ""
    while True:
        page = ops().ListControls(
            ops_pb2.ListControlsRequest(
                organization_id=args.org,
                page_size=100,
                page_token=token,
                scope=enum_value(ops_pb2.ControlScope, args.scope)
                if args.scope
                else ops_pb2.CONTROL_SCOPE_UNSPECIFIED,
                status=enum_value(ops_pb2.ControlStatus, args.status)
                if args.status
                else ops_pb2.CONTROL_STATUS_UNSPECIFIED,
            ),
            timeout=deadline(),
        )
        for control in page.controls:
            output(control, control_line(control))
        token = page.next_page_token
        if not token:
            return 0


def control_line(control: ops_pb2.ExecutionControl) -> str:
    """ "PAUSED  INSTANCE      0193…  until 2026-03-02 12:00:00  PROVIDER_OUTAGE  by key:…  at …  note"."""
    status = enum_label(ops_pb2.ControlStatus, control.status)
    until = f"until {when(control.paused_until)}" if control.HasField("paused_until") else ""
    reason = enum_label(ops_pb2.ControlReason, control.reason) if control.reason else ""
    return (
        f"{status:<7} {enum_label(ops_pb2.ControlScope, control.scope):<12} {control.scope_id:<36} "
        f"{until:<25} {reason:<15} by {control.actor or 'system'}  at {when(control.updated_at)}"
        + (f"  {control.note}" if control.note else "")
    ).rstrip()


def register(commands: Commands) -> None:
    for name, run, help in (
        ("pause", pause, "stop sending for an instance, a campaign or the whole organization"),
        ("resume", resume, "let a paused scope send again"),
    ):
        command = commands.add_parser(name, help=help)
        command.add_argument("scope", choices=SCOPES)
        command.add_argument("id", nargs="?", default="", help="instance or campaign id (none: organization)")
        command.add_argument("--reason", default="manual", help=REASONS)
        command.add_argument("--note", default="", help="free text, shown with the control")
        if name == "pause":
            command.add_argument("--until", default="", help="resume by itself then: ISO time or 30m, 2h, 1d")
        command.add_argument("--actor", default="", help="your name, recorded with your key (audit)")
        command.set_defaults(run=run)
    listing = commands.add_parser("controls", help="the organization's execution controls")
    listing.add_argument("--status", default="", help="active | paused")
    listing.add_argument("--scope", default="", help=" | ".join(SCOPES))
    listing.set_defaults(run=list_controls)
