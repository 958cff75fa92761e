"""`whatlead send`, `whatlead intents`, `whatlead intent <id>`: message intents (gate service)."""

from __future__ import annotations

import argparse
import secrets
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from libs.cli.common import Commands, channel, deadline, enum_label, enum_value, json_output, output, show
from libs.cli.jobs import executor
from libs.rpc.convert import to_timestamp
from whatlead.common.v1 import common_pb2
from whatlead.executor.v1 import executor_pb2
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc


def gate() -> gate_pb2_grpc.GateServiceStub:
    return gate_pb2_grpc.GateServiceStub(channel("gate"))


def _target(value: str) -> common_pb2.Target:
    kind = common_pb2.TARGET_KIND_GROUP if value.endswith("@g.us") else common_pb2.TARGET_KIND_PHONE
    return common_pb2.Target(kind=kind, value=value)


def _payload(args: argparse.Namespace) -> tuple[common_pb2.MessageType.ValueType, common_pb2.MessagePayload]:
    if args.audio:
        return common_pb2.MESSAGE_TYPE_AUDIO, common_pb2.MessagePayload(
            audio=common_pb2.AudioPayload(audio_url=args.audio)
        )
    if args.media:
        return common_pb2.MESSAGE_TYPE_MEDIA, common_pb2.MessagePayload(
            media=common_pb2.MediaPayload(media_url=args.media, mime_type=args.mime, caption=args.text or "")
        )
    if args.react:
        return common_pb2.MESSAGE_TYPE_REACTION, common_pb2.MessagePayload(
            reaction=common_pb2.ReactionPayload(emoji=args.text or "", message_ref=args.react)
        )
    return common_pb2.MESSAGE_TYPE_TEXT, common_pb2.MessagePayload(
        text=common_pb2.TextPayload(text=args.text or "")
    )


def _when(text: str) -> Timestamp | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return to_timestamp(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def send(args: argparse.Namespace) -> int:
    type_, payload = _payload(args)
    response = gate().SubmitIntent(
        gate_pb2.SubmitIntentRequest(
            organization_id=args.org,
            idempotency_key=args.key or secrets.token_hex(12),  # a retry of this command should reuse --key
            target=_target(args.to),
            type=type_,
            purpose=enum_value(common_pb2.Purpose, args.purpose),
            origin=gate_pb2.INTENT_ORIGIN_API,
            campaign_id=args.campaign,
            payload=payload,
            not_before=_when(args.not_before),
            expires_at=_when(args.expires_at),
        ),
        timeout=deadline(),
    )
    if json_output():
        output(response)
        return 0
    intent = response.intent
    status = enum_label(gate_pb2.IntentStatus, intent.status)
    detail = {
        "APPROVED": f"via instance {intent.decided_by_instance_id}",
        "QUEUED": f"until {intent.queued_until.ToDatetime(tzinfo=UTC).isoformat()} "
        f"({enum_label(gate_pb2.DecisionReason, intent.status_reason)})",
    }.get(status, enum_label(gate_pb2.DecisionReason, intent.status_reason) if intent.status_reason else "")
    print(f"{intent.id}  {status}  {detail}{'  (replayed)' if response.replayed else ''}")
    return 0


def list_intents(args: argparse.Namespace) -> int:
    status = (
        enum_value(gate_pb2.IntentStatus, args.status) if args.status else gate_pb2.INTENT_STATUS_UNSPECIFIED
    )
    purpose = enum_value(common_pb2.Purpose, args.purpose) if args.purpose else common_pb2.PURPOSE_UNSPECIFIED
    token, shown = "", 0
    while True:
        page = gate().ListIntents(
            gate_pb2.ListIntentsRequest(
                organization_id=args.org,
                page_size=min(100, args.limit),
                page_token=token,
                status=status,
                purpose=purpose,
                instance_id=args.instance,
                target=_target(args.to) if args.to else None,
                campaign_id=args.campaign,
            ),
            timeout=deadline(),
        )
        for intent in page.intents:
            reason = enum_label(gate_pb2.DecisionReason, intent.status_reason) if intent.status_reason else ""
            output(
                intent,
                f"{intent.id}  {intent.created_at.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M:%S}  "
                f"{enum_label(gate_pb2.IntentStatus, intent.status):<9} "
                f"{enum_label(common_pb2.Purpose, intent.purpose):<9} "
                f"{intent.target.value:<26} {intent.decided_by_instance_id or '-':<36} {reason}",
            )
            shown += 1
            if shown >= args.limit:
                return 0
        token = page.next_page_token
        if not token:
            return 0


def get_intent(args: argparse.Namespace) -> int:
    response = gate().GetIntent(
        gate_pb2.GetIntentRequest(organization_id=args.org, intent_id=args.id), timeout=deadline()
    )
    if json_output():  # the decision record included; `whatlead jobs` tells the delivery
        output(response)
        return 0
    show(response.intent)
    if response.HasField("decision"):
        print("decision:")
        show(response.decision)
    if response.intent.status == gate_pb2.INTENT_STATUS_SENT:
        print(delivery(args.org, args.id))
    return 0


def delivery(organization_id: str, intent_id: str) -> str:
    """How far the message got, as the provider reported it to the gateway: the Executor's job keeps it."""
    try:
        page = executor().ListJobs(
            executor_pb2.ListJobsRequest(organization_id=organization_id, intent_id=intent_id, page_size=1),
            timeout=deadline(),
        )
    except grpc.RpcError as error:
        return f"delivery: unknown (the executor answered {error.code().name})"
    if not page.jobs:
        return "delivery: unknown (no job)"
    status = page.jobs[0].delivery_status
    if status == executor_pb2.DELIVERY_STATUS_UNSPECIFIED:
        return "delivery: no receipt yet"
    return f"delivery: {enum_label(executor_pb2.DeliveryStatus, status)}"


def register(commands: Commands) -> None:
    send_parser = commands.add_parser("send", help="submit a message intent (the Gate decides at once)")
    send_parser.add_argument("--to", required=True, help="E.164 phone (+5511...) or a group JID (...@g.us)")
    send_parser.add_argument("--text", default="", help="the text (or a media caption, or a reaction emoji)")
    send_parser.add_argument("--audio", default="", help="voice note URL")
    send_parser.add_argument("--media", default="", help="media URL (with --mime)")
    send_parser.add_argument("--mime", default="image/jpeg")
    send_parser.add_argument("--react", default="", metavar="MESSAGE_REF", help="react to this message id")
    send_parser.add_argument("--purpose", default="dispatch", help="dispatch | warmup | schedule")
    send_parser.add_argument("--campaign", default="")
    send_parser.add_argument("--key", default="", help="idempotency key (default: a random one)")
    send_parser.add_argument("--not-before", default="", help="ISO time, e.g. 2026-01-31T09:00:00+00:00")
    send_parser.add_argument("--expires-at", default="", help="ISO time; default: 4 h of validity")
    send_parser.set_defaults(run=send)

    intents = commands.add_parser("intents", help="list message intents (newest last)")
    intents.add_argument(
        "--status", default="", help="pending | approved | queued | blocked | dropped | sent | failed"
    )
    intents.add_argument("--purpose", default="")
    intents.add_argument("--instance", default="", help="decided by this instance id")
    intents.add_argument("--to", default="", help="target phone or group JID")
    intents.add_argument("--campaign", default="")
    intents.add_argument("--limit", type=int, default=100)
    intents.set_defaults(run=list_intents)

    intent = commands.add_parser("intent", help="show one intent with its decision record")
    intent.add_argument("id")
    intent.set_defaults(run=get_intent)
