"""whatlead — talk to a running WhatLead over gRPC.

    whatlead instances register --provider waha --ref sales-1 --phone +5511987654321
    whatlead instances list
    whatlead events --context reputation

Addresses default to what `make run` starts; override with WHATLEAD_<SERVICE>_ADDR (e.g.
WHATLEAD_REPUTATION_ADDR=10.0.0.5:50053). The organization comes from --org or WHATLEAD_ORG.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from whatlead.common.v1 import common_pb2
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

from libs.rpc.errors import field_violations

DEFAULT_ADDRESSES = {
    "gate": "127.0.0.1:50051",
    "executor": "127.0.0.1:50052",
    "reputation": "127.0.0.1:50053",
    "ops": "127.0.0.1:50054",
}
DEADLINE_SECONDS = 10.0
Command = Callable[[argparse.Namespace], int]


def address(service: str) -> str:
    return os.environ.get(f"WHATLEAD_{service.upper()}_ADDR", DEFAULT_ADDRESSES[service])


def show(message: Message) -> None:
    print(json_format.MessageToJson(message, indent=2, preserving_proto_field_name=True))


def enum_value(proto_enum: Any, text: str) -> int:
    prefix = proto_enum.Name(0).removesuffix("UNSPECIFIED")
    try:
        return int(proto_enum.Value(prefix + text.strip().upper()))
    except ValueError:
        choices = ", ".join(n.removeprefix(prefix).lower() for n in proto_enum.keys()[1:])
        raise SystemExit(f"unknown value {text!r}; choose from {choices}") from None


def reputation() -> reputation_pb2_grpc.ReputationServiceStub:
    return reputation_pb2_grpc.ReputationServiceStub(grpc.insecure_channel(address("reputation")))


def register_instance(args: argparse.Namespace) -> int:
    response = reputation().RegisterInstance(
        reputation_pb2.RegisterInstanceRequest(
            organization_id=args.org,
            display_name=args.name or args.ref,
            provider=enum_value(common_pb2.Provider, args.provider),
            provider_instance_ref=args.ref,
            phone=args.phone,
            purposes=[enum_value(common_pb2.Purpose, p) for p in args.purposes.split(",") if p],
            connection_state=enum_value(common_pb2.ConnectionState, args.state),
        ),
        timeout=DEADLINE_SECONDS,
    )
    show(response.instance)
    return 0


def list_instances(args: argparse.Namespace) -> int:
    token = ""
    while True:
        page = reputation().ListInstances(
            reputation_pb2.ListInstancesRequest(organization_id=args.org, page_size=100, page_token=token),
            timeout=DEADLINE_SECONDS,
        )
        for instance in page.instances:
            print(
                f"{instance.id}  {common_pb2.Provider.Name(instance.provider).removeprefix('PROVIDER_'):<10} "
                f"{instance.provider_instance_ref:<24} +{instance.phone:<16} "
                f"{common_pb2.ConnectionState.Name(instance.connection_state).removeprefix('CONNECTION_STATE_')}"
            )
        token = page.next_page_token
        if not token:
            return 0


def get_instance(args: argparse.Namespace) -> int:
    show(
        reputation()
        .GetInstance(
            reputation_pb2.GetInstanceRequest(organization_id=args.org, instance_id=args.id),
            timeout=DEADLINE_SECONDS,
        )
        .instance
    )
    return 0


def tail_events(args: argparse.Namespace) -> int:
    return asyncio.run(_tail_events(args))


async def _tail_events(args: argparse.Namespace) -> int:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from libs.messaging import envelope

    client = await nats.connect(args.nats, connect_timeout=3, max_reconnect_attempts=0)
    try:
        js = client.jetstream()
        sub = await js.pull_subscribe(
            envelope.context_subjects(args.root, args.context),
            stream=envelope.stream_name(args.root, args.context),
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
        )
        shown = 0
        while args.limit == 0 or shown < args.limit:
            try:
                batch = await sub.fetch(100, timeout=args.wait)
            except TimeoutError:
                if not args.follow:
                    break
                continue
            for msg in batch:
                event = envelope.decode(msg.headers[envelope.TYPE_HEADER], msg.data)
                print(f"# {msg.subject}  {event.DESCRIPTOR.full_name}")
                show(event)
                shown += 1
        return 0
    finally:
        await client.close()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="whatlead", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    root.add_argument("--org", default=os.environ.get("WHATLEAD_ORG", "demo"), help="organization id")
    commands = root.add_subparsers(dest="command", required=True)

    instances = commands.add_parser("instances", help="the instance registry").add_subparsers(
        dest="action", required=True
    )
    register = instances.add_parser("register", help="register a WhatsApp number")
    register.add_argument(
        "--provider", required=True, help="evolution | waha | wuzapi | turbozap | simulator"
    )
    register.add_argument("--ref", required=True, help="the provider's instance/session name")
    register.add_argument("--phone", required=True, help="E.164, e.g. +5511987654321")
    register.add_argument("--purposes", default="dispatch,warmup,schedule")
    register.add_argument("--state", default="unknown", help="connection state, e.g. connected")
    register.add_argument("--name", default="")
    register.set_defaults(run=register_instance)
    instances.add_parser("list", help="list the organization's instances").set_defaults(run=list_instances)
    get = instances.add_parser("get", help="show one instance")
    get.add_argument("id")
    get.set_defaults(run=get_instance)

    events = commands.add_parser("events", help="print the typed events stored in a context's stream")
    events.add_argument(
        "--context", default="reputation", choices=["gate", "executor", "reputation", "ops", "gateway"]
    )
    events.add_argument("--nats", default=os.environ.get("WHATLEAD_NATS_URL", "nats://127.0.0.1:4322"))
    events.add_argument("--root", default="whatlead", help="subject root (tests use their own)")
    events.add_argument("--limit", type=int, default=0, help="stop after N events (0: all)")
    events.add_argument("--follow", action="store_true", help="keep waiting for new events")
    events.add_argument("--wait", type=float, default=1.0, help=argparse.SUPPRESS)
    events.set_defaults(run=tail_events)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except grpc.RpcError as error:
        violations = field_violations(error)
        summary = "invalid fields:" if violations else error.details()  # type: ignore[attr-defined]
        print(f"error: {error.code().name}: {summary}", file=sys.stderr)  # type: ignore[attr-defined]
        for field, description in violations.items():
            print(f"  {field}: {description}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
