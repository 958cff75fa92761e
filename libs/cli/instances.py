"""`whatlead instances ...`: the instance registry (reputation service)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from google.protobuf import field_mask_pb2

from libs.cli import webhooks
from libs.cli.common import DEADLINE_SECONDS, Commands, channel, enum_label, enum_value, show
from whatlead.common.v1 import common_pb2
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

T = TypeVar("T")
ENGINES = "webjs | noweb | gows"


def reputation() -> reputation_pb2_grpc.ReputationServiceStub:
    return reputation_pb2_grpc.ReputationServiceStub(channel("reputation"))


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
            provider_version=args.provider_version.strip(),
            provider_engine=enum_value(common_pb2.ProviderEngine, args.provider_engine),
        ),
        timeout=DEADLINE_SECONDS,
    )
    show(response.instance)
    return 0


def update_instance(args: argparse.Namespace) -> int:
    """Changes only the options given: each one becomes a path of the update mask."""
    given = {
        "display_name": args.name,
        "provider": _given(args.provider, lambda text: enum_value(common_pb2.Provider, text)),
        "provider_instance_ref": args.ref,
        "phone": args.phone,
        "connection_state": _given(args.state, lambda text: enum_value(common_pb2.ConnectionState, text)),
        "provider_version": _given(args.provider_version, str.strip),
        "provider_engine": _given(
            args.provider_engine, lambda text: enum_value(common_pb2.ProviderEngine, text)
        ),
    }
    paths = [path for path, value in given.items() if value is not None]
    instance = reputation_pb2.Instance(**{path: given[path] for path in paths})
    if args.purposes is not None:
        instance.purposes.extend(enum_value(common_pb2.Purpose, p) for p in args.purposes.split(",") if p)
        paths.append("purposes")
    if not paths:
        raise SystemExit("nothing to change: give at least one option (see --help)")
    response = reputation().UpdateInstance(
        reputation_pb2.UpdateInstanceRequest(
            organization_id=args.org,
            instance_id=args.id,
            instance=instance,
            update_mask=field_mask_pb2.FieldMask(paths=paths),
        ),
        timeout=DEADLINE_SECONDS,
    )
    show(response.instance)
    return 0


def _given(text: str | None, parse: Callable[[str], T]) -> T | None:
    """An option's value parsed, or None when the option was not given (its path stays out of the mask)."""
    return None if text is None else parse(text)


def provider_label(instance: reputation_pb2.Instance) -> str:
    """ "WAHA 2026.4.3 GOWS": the provider, then its version and engine where the registry knows them."""
    parts = [enum_label(common_pb2.Provider, instance.provider), instance.provider_version]
    if instance.provider_engine != common_pb2.PROVIDER_ENGINE_UNSPECIFIED:
        parts.append(enum_label(common_pb2.ProviderEngine, instance.provider_engine))
    return " ".join(part for part in parts if part)


def list_instances(args: argparse.Namespace) -> int:
    token = ""
    while True:
        page = reputation().ListInstances(
            reputation_pb2.ListInstancesRequest(organization_id=args.org, page_size=100, page_token=token),
            timeout=DEADLINE_SECONDS,
        )
        for instance in page.instances:
            print(
                f"{instance.id}  {provider_label(instance):<24} "
                f"{instance.provider_instance_ref:<24} +{instance.phone:<16} "
                f"{enum_label(common_pb2.ConnectionState, instance.connection_state)}"
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


def instance_webhook(args: argparse.Namespace) -> int:
    key = webhooks.master_key(args.master_key_file)  # before any call: a missing key needs no server
    instance = (
        reputation()
        .GetInstance(
            reputation_pb2.GetInstanceRequest(organization_id=args.org, instance_id=args.id),
            timeout=DEADLINE_SECONDS,
        )
        .instance
    )
    provider = enum_label(common_pb2.Provider, instance.provider).lower()
    if args.apply:
        print(webhooks.apply(instance.id, provider, instance.provider_instance_ref, args, key))
    else:
        print(
            webhooks.instructions(
                instance.id, provider, instance.provider_instance_ref, args.gateway_url, key
            )
        )
    return 0


def register(commands: Commands) -> None:
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
    register.add_argument(
        "--provider-version", default="", help="the provider's release, e.g. 2026.4.3 (default: unknown)"
    )
    register.add_argument(
        "--provider-engine", default="unspecified", help=f"WAHA's engine: {ENGINES} (default: unknown)"
    )
    register.set_defaults(run=register_instance)
    update = instances.add_parser("update", help="change an instance: only the options given")
    update.add_argument("id")
    update.add_argument("--provider", help="evolution | waha | wuzapi | turbozap | simulator")
    update.add_argument("--ref", help="the provider's instance/session name")
    update.add_argument("--phone", help="E.164, e.g. +5511987654321")
    update.add_argument("--purposes", help="e.g. dispatch,warmup")
    update.add_argument("--state", help="connection state, e.g. connected")
    update.add_argument("--name")
    update.add_argument("--provider-version", help='the provider\'s release, e.g. 2026.4.3 ("": unknown)')
    update.add_argument("--provider-engine", help=f"WAHA's engine: {ENGINES} (unspecified: unknown)")
    update.set_defaults(run=update_instance)
    instances.add_parser("list", help="list the organization's instances").set_defaults(run=list_instances)
    get = instances.add_parser("get", help="show one instance")
    get.add_argument("id")
    get.set_defaults(run=get_instance)
    webhook = instances.add_parser(
        "webhook", help="the webhook URL and secret to give the instance's provider"
    )
    webhooks.add_arguments(webhook)
    webhook.set_defaults(run=instance_webhook)
