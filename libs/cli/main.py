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

Global options (before the command, or after it: `whatlead instances list -o json`):
  -o/--output text|json   json: proto JSON (the protos' field names, default values left out), one
                          document per line: one per result, per listed item, per streamed message
  --timeout SECONDS       each call's deadline; for a stream, how long to wait for the connection
                          (default 10; WHATLEAD_TIMEOUT)
  --gate-addr, --executor-addr, --reputation-addr, --ops-addr HOST:PORT
  --org ORG_ID            the organization (default the API key's; WHATLEAD_ORG)
  --version

Where each service is, first found wins: its flag (the four above; `events --nats`, `webhook
--gateway-url`, `sim --simulator-url`), the environment (WHATLEAD_GATE_ADDR, WHATLEAD_EXECUTOR_ADDR,
WHATLEAD_REPUTATION_ADDR, WHATLEAD_OPS_ADDR, WHATLEAD_NATS_URL, WHATLEAD_GATEWAY_URL,
WHATLEAD_SIMULATOR_URL), the stack file of a running `make run` (.data/stack.json, or in
WHATLEAD_LOCAL_DATA), then `make run`'s default ports shifted by WHATLEAD_LOCAL_PORT_OFFSET.
Every call carries an API key: WHATLEAD_API_KEY, else the JSON file named by WHATLEAD_CREDENTIALS, else
`make run`'s credentials.json in that data folder. The organization is the key's.

Exit status (a server's answer as grpcurl reports it: 64 + the gRPC status code):
  0    done (a reader that stops early, as `| head` does, is not an error either)
  1    the command's own failure: nothing found, a number banned, no API key, a bad file
  2    usage: an unknown command or option, a missing argument
  64+  the server answered a gRPC status: 64 + its code, e.g. 67 INVALID_ARGUMENT, 68 DEADLINE_EXCEEDED,
       69 NOT_FOUND, 71 PERMISSION_DENIED, 73 FAILED_PRECONDITION, 75 OUT_OF_RANGE, 76 UNIMPLEMENTED,
       78 UNAVAILABLE (a server or NATS that does not answer), 80 UNAUTHENTICATED
  130  interrupted (Ctrl-C)
Every failure writes one line to stderr: `error: <CODE NAME>: <message>`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys

import grpc

from libs.cli import access, controls, events, instances, intents, jobs, reputation, sim, timeline, watch
from libs.cli.common import (
    DEADLINE_SECONDS,
    GRPC_SERVICES,
    OUTPUTS,
    Options,
    StatusError,
    credentials,
    use_options,
    where_called,
)
from libs.rpc.errors import field_violations

# Each module adds its own sub-commands; a new context adds its module here.
COMMAND_MODULES = [instances, reputation, intents, jobs, events, watch, controls, timeline, access, sim]
# What a refused credential means for the user, after the server's own words.
_CREDENTIAL_HINTS = {
    grpc.StatusCode.UNAUTHENTICATED: "the API key was not accepted",
    grpc.StatusCode.PERMISSION_DENIED: "the API key's role does not allow this",
}


EXIT_INTERRUPTED = 130
GRPC_EXIT_OFFSET = 64  # grpcurl's: above the shell's 1 and 2, so a status is never read as one of those
TIMEOUT_ENV = "WHATLEAD_TIMEOUT"
OUTPUT_ENV = "WHATLEAD_OUTPUT"


def exit_status(code: grpc.StatusCode) -> int:
    """A gRPC status as the CLI's exit status: 64 + its number (UNAVAILABLE, 14: 78)."""
    number: int = code.value[0]
    return GRPC_EXIT_OFFSET + number


def package_version() -> str:
    try:
        return importlib.metadata.version("whatlead")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def add_global_options(parser: argparse.ArgumentParser, *, on_command: bool) -> None:
    """The options every command takes. On a command, they default to nothing at all, so what was given
    before the command stands unless repeated after it."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if on_command else value

    parser.add_argument(
        "--org",
        default=default(os.environ.get("WHATLEAD_ORG", "")),
        help="organization id (default: the key's)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default=default(os.environ.get(OUTPUT_ENV, "text")),
        help="text (for people) or json (proto JSON, one document per line)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        default=default(os.environ.get(TIMEOUT_ENV, str(DEADLINE_SECONDS))),
        help=f"each call's deadline; a stream's wait for its connection (default {DEADLINE_SECONDS:g})",
    )
    for service in GRPC_SERVICES:
        parser.add_argument(
            f"--{service}-addr",
            metavar="HOST:PORT",
            default=default(None),
            help=f"the {service} service (default WHATLEAD_{service.upper()}_ADDR, the stack file, make run)",
        )


def _every_command(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in dict.fromkeys(action.choices.values()):
                found += [command, *_every_command(command)]
    return found


# A server that did not answer: the error names which one the CLI called, and where it found it.
_UNANSWERED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="whatlead", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    root.add_argument("--version", action="version", version=f"whatlead {package_version()}")
    add_global_options(root, on_command=False)
    commands = root.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    for command in _every_command(root):
        add_global_options(command, on_command=True)
    return root


_FLAGS_WITHOUT_VALUE = ("-h", "--help", "--version")


def with_default_actions(argv: list[str]) -> list[str]:
    """`whatlead reputation <instance_id>` is `whatlead reputation show <instance_id>`."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 1 if "=" in argv[i] or argv[i] in _FLAGS_WITHOUT_VALUE else 2  # the others take a value
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
    use_options(
        Options(
            output=args.output,
            timeout=float(args.timeout),
            addresses={
                service: address
                for service in GRPC_SERVICES
                if (address := getattr(args, f"{service}_addr", None))
            },
        )
    )
    try:
        status = int(args.run(args))
        sys.stdout.flush()  # here, where a reader gone away is still caught
        return status
    except grpc.RpcError as error:
        print(f"error: {error.code().name}: {_explained(error)}", file=sys.stderr)
        return exit_status(error.code())
    except StatusError as error:
        print(f"error: {error.code.name}: {error.message}", file=sys.stderr)
        return exit_status(error.code)
    except BrokenPipeError:
        # The reader stopped early (`whatlead events | head -1`): it has what it wanted. What is still
        # buffered for it goes nowhere, so that the exit flushing it raises nothing either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _explained(error: grpc.RpcError) -> str:
    """The server's words on one line, with what the user can do about them."""
    hint = _CREDENTIAL_HINTS.get(error.code())
    if hint is not None:
        # Which key it was: where it came from, never the key.
        return f"{error.details()} ({hint}; key from {_key_source()})"
    if error.code() in _UNANSWERED and (where := where_called()):
        return f"{error.details()} ({where})"
    violations = field_violations(error)
    if violations:
        return "invalid fields: " + "; ".join(f"{field}: {text}" for field, text in violations.items())
    return str(error.details())


def _key_source() -> str:
    try:
        return credentials().source
    except SystemExit:
        return "nowhere"


if __name__ == "__main__":
    raise SystemExit(main())
