"""whatlead — talk to a running WhatLead over gRPC.

    whatlead instances register --provider waha --ref sales-1 --phone +5511987654321
    whatlead instances update <instance_id> --provider-version 2026.4.3 --provider-engine gows
    whatlead instances list
    whatlead instances webhook <instance_id>
    whatlead reputation <instance_id>
    whatlead reputation plan <instance_id>
    whatlead jobs <intent_id>
    whatlead events --context reputation

Addresses default to what `make run` starts; override with WHATLEAD_<SERVICE>_ADDR (e.g.
WHATLEAD_REPUTATION_ADDR=10.0.0.5:50053). Calls present an API key: WHATLEAD_API_KEY, else the
"api_key" of the JSON file WHATLEAD_CREDENTIALS names, else of .data/credentials.json (what `make run`
writes). The organization comes from --org or WHATLEAD_ORG; by default, the key's own.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc

from libs.cli import events, instances, intents, jobs, reputation
from libs.rpc.errors import field_violations

# Each module adds its own sub-commands; a new context adds its module here.
COMMAND_MODULES = [instances, reputation, intents, jobs, events]


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
        violations = field_violations(error)
        summary = "invalid fields:" if violations else error.details()
        print(f"error: {error.code().name}: {summary}", file=sys.stderr)
        for field, description in violations.items():
            print(f"  {field}: {description}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
