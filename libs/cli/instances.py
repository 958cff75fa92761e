"""`whatlead instances ...`: the instance registry (reputation service)."""

from __future__ import annotations

import argparse

import grpc

from libs.cli import webhooks
from libs.cli.common import DEADLINE_SECONDS, Commands, address, enum_label, enum_value, show
from whatlead.common.v1 import common_pb2
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc


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
                f"{instance.id}  {enum_label(common_pb2.Provider, instance.provider):<10} "
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
    register.set_defaults(run=register_instance)
    instances.add_parser("list", help="list the organization's instances").set_defaults(run=list_instances)
    get = instances.add_parser("get", help="show one instance")
    get.add_argument("id")
    get.set_defaults(run=get_instance)
    webhook = instances.add_parser(
        "webhook", help="the webhook URL and secret to give the instance's provider"
    )
    webhooks.add_arguments(webhook)
    webhook.set_defaults(run=instance_webhook)
