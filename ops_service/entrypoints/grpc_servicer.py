"""OpsService over gRPC: proto -> command -> use case -> proto, nothing else. The caller is the principal
the authorization interceptor found (libs.rpc.principal); events and the audit log name it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from libs.rpc.convert import enum_from_proto, from_timestamp
from libs.rpc.principal import current_principal
from libs.rpc.roles import role_from_proto, role_to_proto
from libs.seedwork.access import Role
from libs.seedwork.errors import InvalidArgument
from libs.seedwork.pagination import page_request
from libs.seedwork.shared_kernel import ControlScope
from ops_service.application.api_keys import (
    CreateApiKey,
    CreateApiKeyHandler,
    ListApiKeys,
    ListApiKeysHandler,
    ResolveApiKey,
    ResolveApiKeyHandler,
    RevokeApiKey,
    RevokeApiKeyHandler,
)
from ops_service.application.audit import ListAuditEntries, ListAuditEntriesHandler
from ops_service.application.controls import (
    ListControls,
    ListControlsHandler,
    ListPausedControls,
    ListPausedControlsHandler,
    PauseExecution,
    PauseExecutionHandler,
    ResumeExecution,
    ResumeExecutionHandler,
)
from ops_service.application.organizations import (
    AddMember,
    AddMemberHandler,
    CreateOrganization,
    CreateOrganizationHandler,
    GetOrganization,
    GetOrganizationHandler,
    ListMembers,
    ListMembersHandler,
)
from ops_service.application.plans import (
    GetPlan,
    GetPlanHandler,
    ListPlans,
    ListPlansHandler,
    SetPlan,
    SetPlanHandler,
)
from ops_service.domain.control import ControlReason, ControlStatus
from ops_service.domain.plan import PlanLimits
from ops_service.domain.ports import ControlFilter
from ops_service.entrypoints.timeline_rpcs import TimelineRpcs
from ops_service.entrypoints.watch_intents import IntentWatch
from ops_service.infrastructure import metrics
from ops_service.infrastructure.proto_mapping import (
    api_key_to_proto,
    audit_entry_to_proto,
    control_to_proto,
    member_to_proto,
    organization_to_proto,
    plan_to_proto,
)
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc


@dataclass(frozen=True, kw_only=True)
class OpsHandlers:
    """The use cases behind the RPCs this module serves."""

    create_organization: CreateOrganizationHandler
    get_organization: GetOrganizationHandler
    add_member: AddMemberHandler
    list_members: ListMembersHandler
    create_api_key: CreateApiKeyHandler
    revoke_api_key: RevokeApiKeyHandler
    list_api_keys: ListApiKeysHandler
    resolve_api_key: ResolveApiKeyHandler
    pause: PauseExecutionHandler
    resume: ResumeExecutionHandler
    list_controls: ListControlsHandler
    list_paused_controls: ListPausedControlsHandler
    get_plan: GetPlanHandler
    set_plan: SetPlanHandler
    list_plans: ListPlansHandler
    list_audit_entries: ListAuditEntriesHandler


def _role(number: int, field: str = "role") -> Role:
    role = role_from_proto(number)
    if role is None:
        raise InvalidArgument.of(field, "must be OWNER, ADMIN or MEMBER")
    return role


def _scope(number: int) -> ControlScope | None:
    return enum_from_proto(ops_pb2.ControlScope, number, ControlScope)


def _reason(number: int) -> ControlReason | None:
    return enum_from_proto(ops_pb2.ControlReason, number, ControlReason)


class OpsServicer(ops_pb2_grpc.OpsServiceServicer):
    """`timeline`: the intent timeline and the execution metrics (timeline_rpcs.py); `watch`: the live
    stream of intent changes (watch_intents.py). `published`: waits
    until the events committed so far have left (the outbox relay's `flushed`), so PauseExecution and
    ResumeExecution answer once every service can hear the change, not only once it is stored; None
    answers at once (the relay still publishes it within milliseconds)."""

    def __init__(
        self,
        handlers: OpsHandlers,
        timeline: TimelineRpcs,
        watch: IntentWatch,
        *,
        published: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._h = handlers
        self._timeline = timeline
        self._watch = watch
        self._published = published

    async def _control_published(self) -> None:
        if self._published is not None:
            await self._published()

    # ---- Kill-switch ----

    async def PauseExecution(
        self, request: ops_pb2.PauseExecutionRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.PauseExecutionResponse:
        control = await self._h.pause(
            PauseExecution(
                organization_id=request.organization_id,
                scope=_scope(request.scope),
                scope_id=request.scope_id,
                reason=_reason(request.reason),
                note=request.note,
                paused_until=from_timestamp(
                    request.paused_until, present=request.HasField("paused_until"), field="paused_until"
                ),
                operator=request.actor,
                principal=current_principal(),
            )
        )
        await self._control_published()
        metrics.PAUSES.labels(control.scope.value).inc()
        return ops_pb2.PauseExecutionResponse(control=control_to_proto(control))

    async def ResumeExecution(
        self, request: ops_pb2.ResumeExecutionRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ResumeExecutionResponse:
        resumed = await self._h.resume(
            ResumeExecution(
                organization_id=request.organization_id,
                scope=_scope(request.scope),
                scope_id=request.scope_id,
                reason=_reason(request.reason),
                note=request.note,
                operator=request.actor,
                principal=current_principal(),
            )
        )
        if resumed.changed:
            await self._control_published()
            metrics.RESUMES.labels(resumed.control.scope.value, resumed.control.reason.value).inc()
        return ops_pb2.ResumeExecutionResponse(control=control_to_proto(resumed.control))

    async def ListControls(
        self, request: ops_pb2.ListControlsRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ListControlsResponse:
        page = await self._h.list_controls(
            ListControls(
                organization_id=request.organization_id,
                page=page_request(request.page_size, request.page_token),
                where=ControlFilter(
                    scope=_scope(request.scope),
                    status=enum_from_proto(ops_pb2.ControlStatus, request.status, ControlStatus),
                ),
            )
        )
        return ops_pb2.ListControlsResponse(
            controls=[control_to_proto(c) for c in page.items], next_page_token=page.next_page_token
        )

    async def ListPausedControls(
        self, request: ops_pb2.ListPausedControlsRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ListPausedControlsResponse:
        page = await self._h.list_paused_controls(
            ListPausedControls(
                organization_id=request.organization_id,
                page=page_request(request.page_size, request.page_token),
            )
        )
        return ops_pb2.ListPausedControlsResponse(
            controls=[control_to_proto(c) for c in page.items], next_page_token=page.next_page_token
        )

    # ---- Timeline and metrics: built on another branch ----

    # The generated stub types a streaming behaviour as an iterator; under grpc.aio and the server's guard
    # (libs/rpc/server.py, AsyncStreamBehaviour) it is a coroutine that writes with `context.write`.
    async def WatchIntents(  # type: ignore[override]
        self,
        request: ops_pb2.WatchIntentsRequest,
        context: grpc.aio.ServicerContext[ops_pb2.WatchIntentsRequest, ops_pb2.WatchIntentsResponse],
    ) -> None:
        await self._watch.WatchIntents(request, context)

    async def GetIntentTimeline(
        self, request: ops_pb2.GetIntentTimelineRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.GetIntentTimelineResponse:
        return await self._timeline.GetIntentTimeline(request)

    async def GetExecutionMetrics(
        self, request: ops_pb2.GetExecutionMetricsRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.GetExecutionMetricsResponse:
        return await self._timeline.GetExecutionMetrics(request)

    async def GetInstanceMetrics(
        self, request: ops_pb2.GetInstanceMetricsRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.GetInstanceMetricsResponse:
        return await self._timeline.GetInstanceMetrics(request)

    # ---- Plans ----

    async def GetPlan(
        self, request: ops_pb2.GetPlanRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.GetPlanResponse:
        plan = await self._h.get_plan(GetPlan(organization_id=request.organization_id))
        return ops_pb2.GetPlanResponse(plan=plan_to_proto(plan))

    async def SetPlan(
        self, request: ops_pb2.SetPlanRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.SetPlanResponse:
        limits = request.limits
        plan = await self._h.set_plan(
            SetPlan(
                organization_id=request.organization_id,
                name=request.name,
                limits=PlanLimits(
                    daily_message_cap=limits.daily_message_cap,
                    monthly_message_cap=limits.monthly_message_cap,
                    max_instances=limits.max_instances,
                ),
                operator=request.actor,
                principal=current_principal(),
            )
        )
        return ops_pb2.SetPlanResponse(plan=plan_to_proto(plan))

    async def ListPlans(
        self, request: ops_pb2.ListPlansRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ListPlansResponse:
        page = await self._h.list_plans(
            ListPlans(
                organization_id=request.organization_id,
                page=page_request(request.page_size, request.page_token),
            )
        )
        return ops_pb2.ListPlansResponse(
            plans=[plan_to_proto(p) for p in page.items], next_page_token=page.next_page_token
        )

    # ---- Organizations, members, API keys ----

    async def CreateOrganization(
        self, request: ops_pb2.CreateOrganizationRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.CreateOrganizationResponse:
        organization = await self._h.create_organization(
            CreateOrganization(
                name=request.name, owner_user_id=request.owner_user_id, principal=current_principal()
            )
        )
        return ops_pb2.CreateOrganizationResponse(organization=organization_to_proto(organization))

    async def GetOrganization(
        self, request: ops_pb2.GetOrganizationRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.GetOrganizationResponse:
        organization = await self._h.get_organization(
            GetOrganization(organization_id=request.organization_id)
        )
        return ops_pb2.GetOrganizationResponse(organization=organization_to_proto(organization))

    async def AddMember(
        self, request: ops_pb2.AddMemberRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.AddMemberResponse:
        member = await self._h.add_member(
            AddMember(
                organization_id=request.organization_id,
                user_id=request.user_id,
                role=_role(request.role),
                principal=current_principal(),
            )
        )
        return ops_pb2.AddMemberResponse(member=member_to_proto(member))

    async def ListMembers(
        self, request: ops_pb2.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ListMembersResponse:
        page = await self._h.list_members(
            ListMembers(
                organization_id=request.organization_id,
                page=page_request(request.page_size, request.page_token),
            )
        )
        return ops_pb2.ListMembersResponse(
            members=[member_to_proto(m) for m in page.items], next_page_token=page.next_page_token
        )

    async def CreateApiKey(
        self, request: ops_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.CreateApiKeyResponse:
        issued = await self._h.create_api_key(
            CreateApiKey(
                organization_id=request.organization_id,
                name=request.name,
                role=_role(request.role),
                principal=current_principal(),
            )
        )
        metrics.API_KEYS_CREATED.labels(issued.key.role.name).inc()
        return ops_pb2.CreateApiKeyResponse(api_key=api_key_to_proto(issued.key), secret=issued.secret)

    async def RevokeApiKey(
        self, request: ops_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.RevokeApiKeyResponse:
        key, revoked_now = await self._h.revoke_api_key(
            RevokeApiKey(
                organization_id=request.organization_id,
                api_key_id=request.api_key_id,
                principal=current_principal(),
            )
        )
        if revoked_now:
            metrics.API_KEYS_REVOKED.labels(key.role.name).inc()
        return ops_pb2.RevokeApiKeyResponse(api_key=api_key_to_proto(key))

    async def ListApiKeys(
        self, request: ops_pb2.ListApiKeysRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ListApiKeysResponse:
        page = await self._h.list_api_keys(
            ListApiKeys(
                organization_id=request.organization_id,
                page=page_request(request.page_size, request.page_token),
            )
        )
        return ops_pb2.ListApiKeysResponse(
            api_keys=[api_key_to_proto(k) for k in page.items], next_page_token=page.next_page_token
        )

    async def ResolveApiKey(
        self, request: ops_pb2.ResolveApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ResolveApiKeyResponse:
        key = await self._h.resolve_api_key(ResolveApiKey(secret=request.secret))
        return ops_pb2.ResolveApiKeyResponse(
            organization_id=key.organization_id, api_key_id=key.id, role=role_to_proto(key.role)
        )

    # ---- Audit log ----

    async def ListAuditEntries(
        self, request: ops_pb2.ListAuditEntriesRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb2.ListAuditEntriesResponse:
        page = await self._h.list_audit_entries(
            ListAuditEntries(
                organization_id=request.organization_id,
                page=page_request(request.page_size, request.page_token),
            )
        )
        return ops_pb2.ListAuditEntriesResponse(
            entries=[audit_entry_to_proto(e) for e in page.items], next_page_token=page.next_page_token
        )
