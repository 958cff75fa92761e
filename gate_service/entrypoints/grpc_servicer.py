"""GateService over gRPC: proto -> command -> use case -> proto, nothing else."""

from __future__ import annotations

from typing import TypeVar

import grpc

from gate_service.application.create_intent import CreateIntent, CreateIntentHandler
from gate_service.application.decide_intent import DecideIntent, DecideIntentHandler
from gate_service.application.queries import GetIntent, GetIntentHandler, ListIntents, ListIntentsHandler
from gate_service.application.submit_intent import SubmitIntent, SubmitIntentHandler
from gate_service.domain.intent import MessageIntent
from gate_service.domain.ports import IntentFilter
from gate_service.infrastructure.proto_mapping import (
    decision_to_proto,
    intent_to_proto,
    origin_from_proto,
    payload_from_proto,
    purpose_from_proto,
    status_from_proto,
    target_kind_from_proto,
    timestamp_or_none,
    type_from_proto,
)
from libs.rpc.principal import current_actor
from libs.seedwork.errors import Violations
from libs.seedwork.pagination import page_request
from libs.seedwork.phone import normalize_phone
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc

C = TypeVar("C", SubmitIntent, CreateIntent)


def _command(command: type[C], request: gate_pb2.SubmitIntentRequest | gate_pb2.CreateIntentRequest) -> C:
    violations = Violations()
    origin = origin_from_proto(request.origin)
    violations.check(request.origin == 0 or origin is not None, "origin", "unknown origin")
    type_ = type_from_proto(request.type)
    purpose = purpose_from_proto(request.purpose)
    violations.raise_if_any()
    return command(
        organization_id=request.organization_id,
        idempotency_key=request.idempotency_key,
        target_kind=target_kind_from_proto(request.target.kind),
        target_value=request.target.value,
        type=type_,
        purpose=purpose,
        origin=origin,
        campaign_id=request.campaign_id,
        payload=payload_from_proto(request.payload),
        not_before=timestamp_or_none(request, "not_before"),
        expires_at=timestamp_or_none(request, "expires_at"),
        pinned_instance_id=request.instance_id,
        actor=current_actor(),
    )


def _decision(intent: MessageIntent) -> gate_pb2.DecisionRecord | None:
    return decision_to_proto(intent.decision) if intent.decision else None


class GateServicer(gate_pb2_grpc.GateServiceServicer):
    def __init__(
        self,
        *,
        submit_intent: SubmitIntentHandler,
        create_intent: CreateIntentHandler,
        decide_intent: DecideIntentHandler,
        get_intent: GetIntentHandler,
        list_intents: ListIntentsHandler,
    ) -> None:
        self._submit = submit_intent
        self._create = create_intent
        self._decide = decide_intent
        self._get = get_intent
        self._list = list_intents

    async def SubmitIntent(
        self, request: gate_pb2.SubmitIntentRequest, context: grpc.aio.ServicerContext
    ) -> gate_pb2.SubmitIntentResponse:
        result = await self._submit(_command(SubmitIntent, request))
        return gate_pb2.SubmitIntentResponse(
            intent=intent_to_proto(result.intent), decision=_decision(result.intent), replayed=result.replayed
        )

    async def CreateIntent(
        self, request: gate_pb2.CreateIntentRequest, context: grpc.aio.ServicerContext
    ) -> gate_pb2.CreateIntentResponse:
        result = await self._create(_command(CreateIntent, request))
        return gate_pb2.CreateIntentResponse(intent=intent_to_proto(result.intent), replayed=result.replayed)

    async def DecideIntent(
        self, request: gate_pb2.DecideIntentRequest, context: grpc.aio.ServicerContext
    ) -> gate_pb2.DecideIntentResponse:
        intent = await self._decide(DecideIntent(request.organization_id, request.intent_id))
        return gate_pb2.DecideIntentResponse(intent=intent_to_proto(intent), decision=_decision(intent))

    async def GetIntent(
        self, request: gate_pb2.GetIntentRequest, context: grpc.aio.ServicerContext
    ) -> gate_pb2.GetIntentResponse:
        intent = await self._get(GetIntent(request.organization_id, request.intent_id))
        return gate_pb2.GetIntentResponse(intent=intent_to_proto(intent), decision=_decision(intent))

    async def ListIntents(
        self, request: gate_pb2.ListIntentsRequest, context: grpc.aio.ServicerContext
    ) -> gate_pb2.ListIntentsResponse:
        violations = Violations()
        status = status_from_proto(request.status)
        violations.check(request.status == 0 or status is not None, "status", "unknown status")
        purpose = purpose_from_proto(request.purpose)
        violations.check(request.purpose == 0 or purpose is not None, "purpose", "unknown purpose")
        target = request.target.value.strip() or None
        if target and request.target.kind != 2:  # a phone in any format finds its E.164 digits
            target = normalize_phone(target) or target
        violations.raise_if_any()
        page = await self._list(
            ListIntents(
                request.organization_id,
                page_request(request.page_size, request.page_token),
                IntentFilter(
                    status=status,
                    purpose=purpose,
                    instance_id=request.instance_id or None,
                    target=target,
                    campaign_id=request.campaign_id or None,
                    created_after=timestamp_or_none(request, "created_after"),
                    created_before=timestamp_or_none(request, "created_before"),
                ),
            )
        )
        return gate_pb2.ListIntentsResponse(
            intents=[intent_to_proto(i) for i in page.items], next_page_token=page.next_page_token
        )
