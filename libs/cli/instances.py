"""`whatlead instances ...`: the instance registry (reputation service)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TextIO, TypeVar

import grpc
from google.protobuf import field_mask_pb2

from libs.cli import webhooks
from libs.cli.common import (
    Backoff,
    Commands,
    await_connection,
    cancelled_on_ctrl_c,
    channel,
    deadline,
    endpoint,
    enum_label,
    enum_value,
    json_output,
    output,
    when,
)
from libs.cli.qr import print_qr
from whatlead.common.v1 import common_pb2
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

T = TypeVar("T")
ENGINES = "webjs | noweb | gows"


def reputation() -> reputation_pb2_grpc.ReputationServiceStub:
    return reputation_pb2_grpc.ReputationServiceStub(channel("reputation"))


def fetch_instance(args: argparse.Namespace) -> reputation_pb2.Instance:
    """The instance `args.id` of `args.org`."""
    request = reputation_pb2.GetInstanceRequest(organization_id=args.org, instance_id=args.id)
    return reputation().GetInstance(request, timeout=deadline()).instance


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
        timeout=deadline(),
    )
    output(response.instance)
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
        timeout=deadline(),
    )
    output(response.instance)
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
            timeout=deadline(),
        )
        for instance in page.instances:
            output(
                instance,
                f"{instance.id}  {provider_label(instance):<24} "
                f"{instance.provider_instance_ref:<24} +{instance.phone:<16} "
                f"{enum_label(common_pb2.ConnectionState, instance.connection_state)}",
            )
        token = page.next_page_token
        if not token:
            return 0


def get_instance(args: argparse.Namespace) -> int:
    output(fetch_instance(args))
    return 0


def instance_webhook(args: argparse.Namespace) -> int:
    key = webhooks.master_key(args.master_key_file)  # before any call: a missing key needs no server
    instance = fetch_instance(args)
    provider = enum_label(common_pb2.Provider, instance.provider).lower()
    gateway_url = endpoint("gateway", args.gateway_url, "--gateway-url").value
    if args.apply:
        applied = webhooks.apply(instance.id, provider, instance.provider_instance_ref, args, key)
        output(applied.as_json(), applied.text)
    else:
        output(
            webhooks.settings(instance.id, provider, instance.provider_instance_ref, gateway_url, key),
            lambda: webhooks.instructions(
                instance.id, provider, instance.provider_instance_ref, gateway_url, key
            ),
        )
    return 0


def connect_instance(args: argparse.Namespace) -> int:
    """Starts the session at the provider, draws its QR code, and follows the connection until the phone
    has linked the number (0) or WhatsApp refused it (1). Ctrl-C leaves the session waiting for a scan."""
    stub = reputation()
    response = stub.ConnectInstance(
        reputation_pb2.ConnectInstanceRequest(
            organization_id=args.org, instance_id=args.id, pairing_phone=_phone_digits(args.pairing_phone)
        ),
        timeout=deadline(),
    )
    instance = response.instance
    label = f"{provider_label(instance)} {instance.provider_instance_ref}"
    output(response, f"instance {instance.id}  {label}  +{instance.phone}")
    follower = ConnectionFollower(instance, sys.stdout)
    if (outcome := follower.show(response.connection)) is not None:
        return outcome
    await_connection("reputation")
    # The stream starts with the current state, so nothing that happened since the answer above is lost,
    # and a watcher the server cut off for falling behind just watches again. No deadline: it lasts as
    # long as the phone takes to scan; Ctrl-C ends it.
    backoff = Backoff()
    while True:
        try:
            with cancelled_on_ctrl_c() as follow:
                updates = follow(
                    stub.WatchInstance(
                        reputation_pb2.WatchInstanceRequest(organization_id=args.org, instance_id=args.id)
                    )
                )
                for update in updates:
                    backoff.received()
                    if json_output():
                        output(update)
                    if (outcome := follower.show(update.connection)) is not None:
                        return outcome
            raise SystemExit(
                "error: the server ended the instance's stream before it connected; run connect again"
            )
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or (delay := backoff.next_delay()) is None:
                raise
            time.sleep(delay)


class ConnectionFollower:
    """Prints what changes in an instance's connection: each new state, each new QR code (drawn), each new
    pairing code. `show` answers the exit status once the connection is settled (None: keep following)."""

    def __init__(self, instance: reputation_pb2.Instance, out: TextIO) -> None:
        self._instance = instance
        self._out = out
        self._state: tuple[int, str] | None = None
        self._qr = ""
        self._pairing_code = ""

    def show(self, connection: reputation_pb2.InstanceConnection) -> int | None:
        state = enum_label(common_pb2.ConnectionState, connection.state)
        if (connection.state, connection.reason) != self._state:
            self._state = (connection.state, connection.reason)
            reason = f"  ({connection.reason})" if connection.reason else ""
            self._print(f"{when(connection.observed_at)}  {state}{reason}")
        code = connection.qr.code if connection.state == common_pb2.CONNECTION_STATE_QR_REQUIRED else ""
        if code and code != self._qr:
            self._print(
                f"Scan with WhatsApp on the phone of +{self._instance.phone}: "
                "Settings > Linked devices > Link a device"
                if not self._qr
                else "A new QR code (the last one expired):"
            )
            self._qr = code
            if not json_output():
                print_qr(code, self._out)
        if connection.pairing_code and connection.pairing_code != self._pairing_code:
            self._pairing_code = connection.pairing_code
            self._print(
                f"Or type the pairing code {connection.pairing_code} on that phone: "
                "WhatsApp > Linked devices > Link with phone number"
            )
        if connection.state == common_pb2.CONNECTION_STATE_CONNECTED:
            self._print(f"connected: instance {self._instance.id} is linked to +{self._instance.phone}")
            return 0
        if connection.state == common_pb2.CONNECTION_STATE_BANNED:
            print(
                f"error: WhatsApp banned +{self._instance.phone} (instance {self._instance.id}); "
                "it will not connect",
                file=sys.stderr,
            )
            return 1
        return None

    def _print(self, line: str) -> None:
        if not json_output():  # the documents say it all: no lines or QR drawing between them
            print(line, file=self._out, flush=True)


def _phone_digits(text: str) -> str:
    """ "+55 (11) 98765-4321" -> "5511987654321": E.164 as typed, without its punctuation."""
    return "".join(ch for ch in text if ch not in "+-(). ")


def logout_instance(args: argparse.Namespace) -> int:
    request = reputation_pb2.LogoutInstanceRequest(organization_id=args.org, instance_id=args.id)
    instance = reputation().LogoutInstance(request, timeout=deadline()).instance
    _output_undone("logged out", instance, f"`whatlead instances connect {instance.id}` links it again")
    return 0


def delete_instance(args: argparse.Namespace) -> int:
    request = reputation_pb2.DeleteInstanceRequest(organization_id=args.org, instance_id=args.id)
    instance = reputation().DeleteInstance(request, timeout=deadline()).instance
    _output_undone(
        "deleted the session",
        instance,
        f"the registry keeps the instance and its history; `whatlead instances connect {instance.id}` "
        "starts a new session",
    )
    return 0


def _output_undone(what: str, instance: reputation_pb2.Instance, then: str) -> None:
    state = enum_label(common_pb2.ConnectionState, instance.connection_state)
    label = f"{provider_label(instance)} {instance.provider_instance_ref}"
    output(instance, f"{what}: {instance.id}  {label}  {state}; {then}")


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
    connect = instances.add_parser(
        "connect",
        help="link the number: start its session at the provider, draw the QR code, wait for the scan",
    )
    connect.add_argument("id", help="the instance id")
    connect.add_argument(
        "--pairing-phone",
        default="",
        help="E.164 number to link by a pairing code typed on the phone, where the provider offers it",
    )
    connect.set_defaults(run=connect_instance)
    logout = instances.add_parser(
        "logout", help="log the number out at its provider (the session stays, ready for a new QR code)"
    )
    logout.add_argument("id", help="the instance id")
    logout.set_defaults(run=logout_instance)
    delete = instances.add_parser(
        "delete", help="delete the instance's session at its provider (the registry keeps its history)"
    )
    delete.add_argument("id", help="the instance id")
    delete.set_defaults(run=delete_instance)
