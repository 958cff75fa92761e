"""OpsService over gRPC: proto -> command -> use case -> proto, nothing else."""

from __future__ import annotations

import grpc

from ops_service.entrypoints.audit_rpcs import AuditRpcs
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc


class OpsServicer(ops_pb2_grpc.OpsServiceServicer):
    def __init__(self, *, audit: AuditRpcs) -> None:
        self._audit = audit

    async def PauseExecution(
        self, request: ops_pb2.PauseExecutionRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.PauseExecutionResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def ResumeExecution(
        self, request: ops_pb2.ResumeExecutionRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ResumeExecutionResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def ListControls(
        self, request: ops_pb2.ListControlsRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ListControlsResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def ListPausedControls(
        self, request: ops_pb2.ListPausedControlsRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ListPausedControlsResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def GetIntentTimeline(
        self, request: ops_pb2.GetIntentTimelineRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.GetIntentTimelineResponse:
        return await self._audit.GetIntentTimeline(request)

    async def GetExecutionMetrics(
        self, request: ops_pb2.GetExecutionMetricsRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.GetExecutionMetricsResponse:
        return await self._audit.GetExecutionMetrics(request)

    async def GetInstanceMetrics(
        self, request: ops_pb2.GetInstanceMetricsRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.GetInstanceMetricsResponse:
        return await self._audit.GetInstanceMetrics(request)

    async def GetPlan(
        self, request: ops_pb2.GetPlanRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.GetPlanResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def SetPlan(
        self, request: ops_pb2.SetPlanRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.SetPlanResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def ListPlans(
        self, request: ops_pb2.ListPlansRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ListPlansResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def CreateOrganization(
        self, request: ops_pb2.CreateOrganizationRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.CreateOrganizationResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def GetOrganization(
        self, request: ops_pb2.GetOrganizationRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.GetOrganizationResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def AddMember(
        self, request: ops_pb2.AddMemberRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.AddMemberResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def ListMembers(
        self, request: ops_pb2.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ListMembersResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def CreateApiKey(
        self, request: ops_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.CreateApiKeyResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def RevokeApiKey(
        self, request: ops_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.RevokeApiKeyResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def ListApiKeys(
        self, request: ops_pb2.ListApiKeysRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ListApiKeysResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def ResolveApiKey(
        self, request: ops_pb2.ResolveApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ResolveApiKeyResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")

    async def ListAuditEntries(
        self, request: ops_pb2.ListAuditEntriesRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ListAuditEntriesResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not built yet")
