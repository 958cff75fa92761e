"""The timeline and metrics RPCs of OpsService: proto -> query -> use case -> proto. `OpsServicer` delegates
to them."""

from __future__ import annotations

from dataclasses import dataclass

from ops_service.application.execution_metrics import (
    GetExecutionMetrics,
    GetExecutionMetricsHandler,
    GetInstanceMetrics,
    GetInstanceMetricsHandler,
)
from ops_service.application.intent_timeline import GetIntentTimeline, GetIntentTimelineHandler
from ops_service.infrastructure.timeline_proto import (
    entry_to_proto,
    execution_metrics_to_proto,
    instance_metrics_to_proto,
)
from whatlead.ops.v1 import ops_pb2


@dataclass(frozen=True, kw_only=True)
class TimelineRpcs:
    get_intent_timeline: GetIntentTimelineHandler
    get_execution_metrics: GetExecutionMetricsHandler
    get_instance_metrics: GetInstanceMetricsHandler

    async def GetIntentTimeline(
        self, request: ops_pb2.GetIntentTimelineRequest
    ) -> ops_pb2.GetIntentTimelineResponse:
        facts = await self.get_intent_timeline(
            GetIntentTimeline(organization_id=request.organization_id, intent_id=request.intent_id)
        )
        return ops_pb2.GetIntentTimelineResponse(entries=[entry_to_proto(fact) for fact in facts])

    async def GetExecutionMetrics(
        self, request: ops_pb2.GetExecutionMetricsRequest
    ) -> ops_pb2.GetExecutionMetricsResponse:
        result = await self.get_execution_metrics(
            GetExecutionMetrics(
                organization_id=request.organization_id,
                window=request.window.ToTimedelta() if request.HasField("window") else None,
                max_instances=request.max_instances,
            )
        )
        return execution_metrics_to_proto(result)

    async def GetInstanceMetrics(
        self, request: ops_pb2.GetInstanceMetricsRequest
    ) -> ops_pb2.GetInstanceMetricsResponse:
        result = await self.get_instance_metrics(
            GetInstanceMetrics(
                organization_id=request.organization_id,
                instance_id=request.instance_id,
                window=request.window.ToTimedelta() if request.HasField("window") else None,
            )
        )
        return instance_metrics_to_proto(result)
