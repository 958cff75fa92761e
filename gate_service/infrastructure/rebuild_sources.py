"""Rebuild sources over gRPC: ReputationService.ListInstanceStates, OpsService paused controls and plans."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from gate_service.domain.projection import InstanceState, Plan, Reputation
from gate_service.infrastructure.proto_mapping import (
    instance_state_from_proto,
    plan_from_proto,
    reputation_from_proto,
)
from libs.messaging.controls import control_from_proto
from libs.seedwork.controls import ExecutionControl
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

PAGE = 500


class GrpcInstanceStateSource:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = reputation_pb2_grpc.ReputationServiceStub(channel)

    async def instance_states(self) -> AsyncIterator[tuple[InstanceState, Reputation | None]]:
        token = ""
        while True:
            page = await self._stub.ListInstanceStates(
                reputation_pb2.ListInstanceStatesRequest(organization_id="", page_size=PAGE, page_token=token)
            )
            for item in page.states:
                reputation = reputation_from_proto(item.reputation) if item.HasField("reputation") else None
                if reputation is not None and not reputation.version:
                    reputation = None  # not evaluated yet: the policies' defaults apply
                yield instance_state_from_proto(item.instance), reputation
            token = page.next_page_token
            if not token:
                return


class GrpcControlSource:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = ops_pb2_grpc.OpsServiceStub(channel)

    async def paused_controls(self) -> AsyncIterator[ExecutionControl]:
        token = ""
        while True:
            page = await self._stub.ListPausedControls(
                ops_pb2.ListPausedControlsRequest(organization_id="", page_size=PAGE, page_token=token)
            )
            for item in page.controls:
                control = control_from_proto(item)
                if control is not None:
                    yield control
            token = page.next_page_token
            if not token:
                return

    async def plans(self) -> AsyncIterator[Plan]:
        token = ""
        while True:
            page = await self._stub.ListPlans(
                ops_pb2.ListPlansRequest(organization_id="", page_size=PAGE, page_token=token)
            )
            for item in page.plans:
                yield plan_from_proto(item)
            token = page.next_page_token
            if not token:
                return
