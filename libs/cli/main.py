"""whatlead — talk to a running WhatLead over gRPC.

    whatlead instances register --provider waha --ref sales-1 --phone +5511987654321
    whatlead instances update <instance_id> --provider-version 2026.4.3 --provider-engine gows
    whatlead instances list
    whatlead instances connect <instance_id>      # draws the QR code, waits for the scan
    whatlead instances logout <instance_id>
    whatlead instances delete <instance_id>
    whatlead instances webhook <instance_id>
    whatlead reputation <instance_id>
    whatlead reputation plan <instance_id>
    whatlead jobs <intent_id>
    whatlead events --context reputation
    whatlead watch --campaign black-friday        # every change of the intents, live
    whatlead sim scan <instance_id>               # the simulator's phone scans the QR code
    whatlead pause instance <instance_id> --note "provider outage" --until 2h
    whatlead resume instance <instance_id>
    whatlead controls --status paused
    whatlead timeline <intent_id>
    whatlead metrics --window 1h
    whatlead keys create --name ci --role member
    whatlead members add <user> --role admin
    whatlead plan set --daily 1000 --max-instances 5
    whatlead audit

Addresses default to what `make run` starts; override with WHATLEAD_<SERVICE>_ADDR (e.g.
WHATLEAD_REPUTATION_ADDR=10.0.0.5:50053). Every call carries an API key: WHATLEAD_API_KEY, else the JSON
file named by WHATLEAD_CREDENTIALS, else .data/credentials.json (which `make run` writes). The
organization is the key's; --org or WHATLEAD_ORG names one explicitly. `whatlead sim` talks to the
provider simulator at WHATLEAD_SIMULATOR_URL (default: `make run`'s, http://127.0.0.1:8090).
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc

from libs.cli import access, controls, events, instances, intents, jobs, reputation, sim, timeline, watch
from libs.cli.common import credentials
from libs.rpc.errors import field_violations

# Each module adds its own sub-commands; a new context adds its module here.
COMMAND_MODULES = [instances, reputation, intents, jobs, events, watch, controls, timeline, access, sim]
# What a refused credential means for the user, after the server's own words.
_CREDENTIAL_HINTS = {
    grpc.StatusCode.UNAUTHENTICATED: "the API key was not accepted",
    grpc.StatusCode.PERMISSION_DENIED: "the API key's role does not allow this",
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="whatlead", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    root.add_argument(
        "--org", default=os.environ.get("WHATLEAD_ORG", ""), help="organization id (default: the API key's)"
    )
    commands = root.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return root


def with_default_actions(argv: list[str]) -> list[str]:
    """`whatlead reputation <instance_id>` is `whatlead reputation show <instance_id>`."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 1 if "=" in argv[i] or argv[i] in ("-h", "--help") else 2  # --org takes a value
    if (
        i + 1 < len(argv)
        and argv[i] == "reputation"
        and not argv[i + 1].startswith("-")
        and argv[i + 1] not in reputation.ACTIONS
    ):
        return [*argv[: i + 1], reputation.DEFAULT_ACTION, *argv[i + 1 :]]
    return argv


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(with_default_actions(list(sys.argv[1:] if argv is None else argv)))
    try:
        return int(args.run(args))
    except grpc.RpcError as error:
        hint = _CREDENTIAL_HINTS.get(error.code())
        if hint is not None:
            # One line: what the server said, and which key it was (where it came from, never the key).
            print(
                f"error: {error.code().name}: {error.details()} ({hint}; key from {_key_source()})",
                file=sys.stderr,
            )
            return 1
        violations = field_violations(error)
        summary = "invalid fields:" if violations else error.details()
        print(f"error: {error.code().name}: {summary}", file=sys.stderr)
        for field, description in violations.items():
            print(f"  {field}: {description}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _key_source() -> str:
    try:
        return credentials().source
    except SystemExit:
        return "nowhere"


if __name__ == "__main__":
    raise SystemExit(main())
