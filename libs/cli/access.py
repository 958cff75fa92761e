"""`whatlead keys | members | plan | audit`: who may use the organization, what it may send, and what its
operators did (ops service)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from libs.cli.common import Commands, deadline, enum_label, enum_value, json_output, output, say, when
from libs.cli.controls import ops
from whatlead.ops.v1 import ops_pb2

ROLES = "member | admin | owner"
Row = TypeVar("Row")


def _pages(call: Callable[[str], Any], rows: Callable[[Any], Iterator[Row]]) -> Iterator[Row]:
    """Every row of a paged listing: `call(page_token)` -> page, `rows(page)` -> its rows."""
    token = ""
    while True:
        page = call(token)
        yield from rows(page)
        token = page.next_page_token
        if not token:
            return


# --- keys ---------------------------------------------------------------------------------------------


def create_key(args: argparse.Namespace) -> int:
    response = ops().CreateApiKey(
        ops_pb2.CreateApiKeyRequest(
            organization_id=args.org, name=args.name, role=enum_value(ops_pb2.MemberRole, args.role)
        ),
        timeout=deadline(),
    )
    output(response, lambda: f"{key_line(response.api_key)}\n{response.secret}")
    print("Store this key now: it is shown only this once and cannot be read again.", file=sys.stderr)
    return 0


def list_keys(args: argparse.Namespace) -> int:
    def page(token: str) -> ops_pb2.ListApiKeysResponse:
        return ops().ListApiKeys(
            ops_pb2.ListApiKeysRequest(organization_id=args.org, page_size=100, page_token=token),
            timeout=deadline(),
        )

    for key in _pages(page, lambda p: iter(p.api_keys)):
        output(key, key_line(key))
    return 0


def revoke_key(args: argparse.Namespace) -> int:
    response = ops().RevokeApiKey(
        ops_pb2.RevokeApiKeyRequest(organization_id=args.org, api_key_id=args.id), timeout=deadline()
    )
    output(response.api_key, lambda: key_line(response.api_key))
    return 0


def key_line(key: ops_pb2.ApiKey) -> str:
    state = f"revoked {when(key.revoked_at)}" if key.HasField("revoked_at") else "active"
    return (
        f"{key.id}  {key.prefix:<12} {enum_label(ops_pb2.MemberRole, key.role):<7} {key.name or '-':<20} "
        f"created {when(key.created_at)} by {key.created_by or '-'}  {state}"
    )


# --- members ------------------------------------------------------------------------------------------


def list_members(args: argparse.Namespace) -> int:
    def page(token: str) -> ops_pb2.ListMembersResponse:
        return ops().ListMembers(
            ops_pb2.ListMembersRequest(organization_id=args.org, page_size=100, page_token=token),
            timeout=deadline(),
        )

    for member in _pages(page, lambda p: iter(p.members)):
        output(member, member_line(member))
    return 0


def add_member(args: argparse.Namespace) -> int:
    response = ops().AddMember(
        ops_pb2.AddMemberRequest(
            organization_id=args.org, user_id=args.user, role=enum_value(ops_pb2.MemberRole, args.role)
        ),
        timeout=deadline(),
    )
    output(response.member, lambda: member_line(response.member))
    return 0


def member_line(member: ops_pb2.Member) -> str:
    role = enum_label(ops_pb2.MemberRole, member.role)
    return f"{member.user_id:<36} {role:<7} since {when(member.created_at)}"


# --- plan ---------------------------------------------------------------------------------------------


def show_plan(args: argparse.Namespace) -> int:
    plan = ops().GetPlan(ops_pb2.GetPlanRequest(organization_id=args.org), timeout=deadline()).plan
    output(plan, lambda: plan_text(plan))
    return 0


def set_plan(args: argparse.Namespace) -> int:
    """Changes only the limits given; the others stay as the current plan has them."""
    given = {
        "daily_message_cap": args.daily,
        "monthly_message_cap": args.monthly,
        "max_instances": args.max_instances,
    }
    if args.name is None and all(value is None for value in given.values()):
        raise SystemExit("error: nothing to change: give --daily, --monthly, --max-instances or --name")
    stub = ops()
    current = stub.GetPlan(ops_pb2.GetPlanRequest(organization_id=args.org), timeout=deadline()).plan
    limits = ops_pb2.PlanLimits()
    limits.CopyFrom(current.limits)
    for field, value in given.items():
        if value is not None:
            setattr(limits, field, value)
    response = stub.SetPlan(
        ops_pb2.SetPlanRequest(
            organization_id=args.org,
            name=current.name if args.name is None else args.name,
            limits=limits,
            actor=args.actor,
        ),
        timeout=deadline(),
    )
    output(response.plan, lambda: plan_text(response.plan))
    return 0


def _cap(value: int) -> str:
    return "unlimited" if value == 0 else str(value)


def plan_text(plan: ops_pb2.Plan) -> str:
    limits = plan.limits
    return "\n".join(
        [
            f"plan           {plan.name or '-'}  (version {plan.version}, updated {when(plan.updated_at)})",
            f"daily cap      {_cap(limits.daily_message_cap)}",
            f"monthly cap    {_cap(limits.monthly_message_cap)}",
            f"max instances  {_cap(limits.max_instances)}",
        ]
    )


# --- audit --------------------------------------------------------------------------------------------


def list_audit(args: argparse.Namespace) -> int:
    def page(token: str) -> ops_pb2.ListAuditEntriesResponse:
        return ops().ListAuditEntries(
            ops_pb2.ListAuditEntriesRequest(
                organization_id=args.org, page_size=min(100, args.limit), page_token=token
            ),
            timeout=deadline(),
        )

    entries = []
    for entry in _pages(page, lambda p: iter(p.entries)):
        entries.append(entry)
        if len(entries) >= args.limit:
            break
    if not entries:
        say("no operator action recorded")
        return 0
    if json_output():
        for e in entries:
            output(e)
        return 0
    actors = max(len(e.actor or "-") for e in entries)
    actions = max(len(e.action) for e in entries)
    for e in entries:
        actor = e.actor or "-"
        print(f"{when(e.occurred_at):<19}  {actor:<{actors}}  {e.action:<{actions}}  {e.target}  {e.summary}")
    return 0


def register(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="the organization's API keys").add_subparsers(
        dest="action", required=True
    )
    create = keys.add_parser("create", help="a new key; its secret is printed once")
    create.add_argument("--name", required=True, help="what it is for, e.g. ci")
    create.add_argument("--role", required=True, help=f"{ROLES} (at most your own)")
    create.set_defaults(run=create_key)
    keys.add_parser("list", help="every key, revoked ones too").set_defaults(run=list_keys)
    revoke = keys.add_parser("revoke", help="stop a key from working")
    revoke.add_argument("id", help="the key's id (from keys list)")
    revoke.set_defaults(run=revoke_key)

    members = commands.add_parser("members", help="the organization's members (list, or add one)")
    members.set_defaults(run=list_members)
    member_actions = members.add_subparsers(dest="action")
    add = member_actions.add_parser("add", help="add a member with a role")
    add.add_argument("user", help="the user's id")
    add.add_argument("--role", required=True, help=ROLES)
    add.set_defaults(run=add_member)

    plan = commands.add_parser("plan", help="the organization's plan (show, or set its limits)")
    plan.set_defaults(run=show_plan)
    plan_actions = plan.add_subparsers(dest="action")
    change = plan_actions.add_parser("set", help="change the limits given (0: unlimited)")
    change.add_argument("--daily", type=int, help="messages per UTC day")
    change.add_argument("--monthly", type=int, help="messages per UTC month")
    change.add_argument("--max-instances", type=int, help="instances the organization may register")
    change.add_argument("--name", help="the plan's name, e.g. starter")
    change.add_argument("--actor", default="", help="your name, recorded with your key (audit)")
    change.set_defaults(run=set_plan)

    audit = commands.add_parser("audit", help="operator actions, newest first")
    audit.add_argument("--limit", type=int, default=50)
    audit.set_defaults(run=list_audit)
