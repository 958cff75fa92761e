"""`whatlead sim scan | logout | ban <instance_id>`: play the phone of a number on the provider simulator.

The registry names the instance's session at the simulator (its provider reference); the simulator's
control routes (`POST /_sim/sessions/{session}/scan|logout|ban`, libs/provider_simulator) then do what a
phone would: scan the QR code showing now, remove the linked device, or be banned by WhatsApp. The
simulator reports each change to WhatLead through the session's webhook, as a real provider would.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import grpc

from libs.cli.common import Commands, StatusError, deadline, endpoint, enum_label, output
from libs.cli.instances import fetch_instance
from libs.cli.webhooks import LOCAL_SIMULATOR_API_KEY
from whatlead.common.v1 import common_pb2

SIMULATOR_URL_ENV = "WHATLEAD_SIMULATOR_URL"
SIMULATOR_API_KEY_ENV = "WHATLEAD_SIMULATOR_API_KEY"
# What each action is, for the phone, and how its result reads.
ACTIONS = {
    "scan": ("scan the QR code showing now: the number links", "scanned"),
    "logout": ("remove the linked device on the phone: the session is logged out", "logged out by the phone"),
    "ban": ("WhatsApp bans the number: the session fails for good", "banned"),
}


def act(args: argparse.Namespace) -> int:
    instance = fetch_instance(args)
    if instance.provider != common_pb2.PROVIDER_SIMULATOR:
        provider = enum_label(common_pb2.Provider, instance.provider)
        raise SystemExit(
            f"error: instance {instance.id} is on {provider}, not on the simulator: "
            "`whatlead sim` plays only the simulator's phones (scan a real code with the phone itself)"
        )
    session = instance.provider_instance_ref
    simulator = endpoint("simulator", args.simulator_url, "--simulator-url").value
    answer = _post(simulator, args.simulator_api_key, f"/_sim/sessions/{_quoted(session)}/{args.action}")
    status = str(answer.get("status", "?"))
    output(
        {"instance_id": instance.id, "action": args.action, "session": session, "status": status},
        f"{ACTIONS[args.action][1]}: instance {instance.id}, simulator session {session} is now "
        f"{status}; the simulator's webhook tells WhatLead",
    )
    return 0


def _quoted(session: str) -> str:
    return urllib.parse.quote(session, safe="")


def _post(base_url: str, api_key: str, path: str) -> dict[str, Any]:
    """POST `{}` to a control route; the simulator's refusal or silence is a one-line error."""
    request = urllib.request.Request(
        base_url.rstrip("/") + path,
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json", "X-Api-Key": api_key},
    )
    try:
        with urllib.request.urlopen(request, timeout=deadline()) as response:
            found = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raise SystemExit(f"error: the simulator answered {error.code}: {_refusal(error)}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise StatusError(
            grpc.StatusCode.UNAVAILABLE,
            f"cannot reach the simulator at {base_url} ({reason}); is `make run` up? "
            f"(--simulator-url or {SIMULATOR_URL_ENV})",
        ) from None
    return found if isinstance(found, dict) else {}


def _refusal(error: urllib.error.HTTPError) -> str:
    if error.code == 401:
        return f"the simulator's API key was not accepted (--simulator-api-key or {SIMULATOR_API_KEY_ENV})"
    try:
        message = json.loads(error.read()).get("message")
    except (ValueError, AttributeError, OSError):
        message = None
    if error.code == 404:
        return f"{message or 'no such session'} (run `whatlead instances connect <instance id>` first)"
    if isinstance(message, list):
        message = "; ".join(str(part) for part in message)
    return str(message or error.reason)


def register(commands: Commands) -> None:
    sim = commands.add_parser(
        "sim", help="play the phone of a number on the provider simulator: scan, logout, ban"
    ).add_subparsers(dest="action", required=True)
    for action, (help_text, _) in ACTIONS.items():
        command = sim.add_parser(action, help=help_text)
        command.add_argument("id", help="the instance id (an instance on the SIMULATOR provider)")
        command.add_argument(
            "--simulator-url",
            help=f"the simulator's base URL (default ${SIMULATOR_URL_ENV}, else `make run`'s)",
        )
        command.add_argument(
            "--simulator-api-key",
            default=os.environ.get(SIMULATOR_API_KEY_ENV, LOCAL_SIMULATOR_API_KEY),
            help=f"its API key (default ${SIMULATOR_API_KEY_ENV} or `make run`'s)",
        )
        command.set_defaults(run=act)
