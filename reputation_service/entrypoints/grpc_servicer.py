"""ReputationService over gRPC: proto -> command -> use case -> proto, nothing else."""

from __future__ import annotations

import grpc

from libs.rpc.convert import enum_from_proto
from libs.seedwork.errors import Violations
from libs.seedwork.pagination import page_request
from libs.seedwork.shared_kernel import ConnectionState, Provider, ProviderEngine, Purpose
from reputation_service.application.queries import (
    GetInstance,
    GetInstanceHandler,
    ListInstances,
    ListInstancesHandler,
    ListInstanceStates,
    ListInstanceStatesHandler,
)
from reputation_service.application.register_instance import RegisterInstance, RegisterInstanceHandler
from reputation_service.application.reputation_queries import (
    GetReputation,
    GetReputationHandler,
    ListReputations,
    ListReputationsHandler,
)
from reputation_service.application.update_instance import UpdateInstance, UpdateInstanceHandler
from reputation_service.application.window_counts import GetWindowStats, GetWindowStatsHandler
from reputation_service.domain.evaluation import HealthStatus
from reputation_service.domain.instance import InstanceChanges
from reputation_service.domain.ports import InstanceFilter, ReputationFilter
from reputation_service.domain.warmup import WarmupPhase
from reputation_service.entrypoints.onboarding_rpcs import OnboardingRpcs
from reputation_service.entrypoints.warmup_rpcs import WarmupRpcs
from reputation_service.infrastructure.proto_mapping import (
    explanation_to_proto,
    instance_to_proto,
    reputation_to_proto,
    window_counts_to_proto,
)
from whatlead.common.v1 import common_pb2
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

UPDATABLE = (
    "display_name",
    "provider",
    "provider_instance_ref",
    "phone",
    "purposes",
    "connection_state",
    "provider_version",
    "provider_engine",
)


def _engine(number: int) -> ProviderEngine:
    """0 is UNSPECIFIED (unknown); the contract refuses numbers it does not define before we get here."""
    return enum_from_proto(common_pb2.ProviderEngine, number, ProviderEngine) or ProviderEngine.UNSPECIFIED


def _purposes(values: list[int], violations: Violations, field: str) -> frozenset[Purpose]:
    purposes = set()
    for number in values:
        purpose = enum_from_proto(common_pb2.Purpose, number, Purpose)
        if purpose is None:
            violations.add(field, f"unknown purpose {number}")
        else:
            purposes.add(purpose)
    return frozenset(purposes)


class ReputationServicer(reputation_pb2_grpc.ReputationServiceServicer):
    def __init__(
        self,
        *,
        register_instance: RegisterInstanceHandler,
        update_instance: UpdateInstanceHandler,
        get_instance: GetInstanceHandler,
        list_instances: ListInstancesHandler,
        list_instance_states: ListInstanceStatesHandler,
        get_window_stats: GetWindowStatsHandler,
        get_reputation: GetReputationHandler,
        list_reputations: ListReputationsHandler,
        warmup: WarmupRpcs,
        onboarding: OnboardingRpcs,
    ) -> None:
        self._warmup = warmup
        self._onboarding = onboarding
        self._register = register_instance
        self._update = update_instance
        self._get = get_instance
        self._list = list_instances
        self._list_states = list_instance_states
        self._window_stats = get_window_stats
        self._get_reputation = get_reputation
        self._list_reputations = list_reputations

    async def RegisterInstance(
        self, request: reputation_pb2.RegisterInstanceRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.RegisterInstanceResponse:
        violations = Violations()
        purposes = _purposes(list(request.purposes), violations, "purposes")
        violations.raise_if_any()
        instance = await self._register(
            RegisterInstance(
                organization_id=request.organization_id,
                display_name=request.display_name,
                provider=enum_from_proto(common_pb2.Provider, request.provider, Provider),
                provider_instance_ref=request.provider_instance_ref,
                phone=request.phone,
                purposes=purposes,
                connection_state=enum_from_proto(
                    common_pb2.ConnectionState, request.connection_state, ConnectionState
                ),
                provider_version=request.provider_version,
                provider_engine=_engine(request.provider_engine),
            )
        )
        return reputation_pb2.RegisterInstanceResponse(instance=instance_to_proto(instance))

    async def UpdateInstance(
        self, request: reputation_pb2.UpdateInstanceRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.UpdateInstanceResponse:
        violations = Violations()
        paths = list(request.update_mask.paths)
        violations.check(bool(paths), "update_mask", "must name at least one field")
        for path in paths:
            violations.check(
                path in UPDATABLE, "update_mask", f"{path!r} is not updatable ({', '.join(UPDATABLE)})"
            )
        fields = request.instance
        changes = InstanceChanges(
            display_name=fields.display_name if "display_name" in paths else None,
            provider=(
                enum_from_proto(common_pb2.Provider, fields.provider, Provider)
                if "provider" in paths
                else None
            ),
            provider_instance_ref=fields.provider_instance_ref if "provider_instance_ref" in paths else None,
            phone=fields.phone if "phone" in paths else None,
            purposes=_purposes(list(fields.purposes), violations, "instance.purposes")
            if "purposes" in paths
            else None,
            connection_state=(
                enum_from_proto(common_pb2.ConnectionState, fields.connection_state, ConnectionState)
                if "connection_state" in paths
                else None
            ),
            provider_version=fields.provider_version if "provider_version" in paths else None,
            provider_engine=_engine(fields.provider_engine) if "provider_engine" in paths else None,
        )
        if "provider" in paths and changes.provider is None:
            violations.add("instance.provider", "must be a known provider")
        if "connection_state" in paths and changes.connection_state is None:
            violations.add("instance.connection_state", "must be a known connection state")
        violations.raise_if_any()
        instance = await self._update(
            UpdateInstance(
                organization_id=request.organization_id, instance_id=request.instance_id, changes=changes
            )
        )
        return reputation_pb2.UpdateInstanceResponse(instance=instance_to_proto(instance))

    async def ConnectInstance(
        self, request: reputation_pb2.ConnectInstanceRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.ConnectInstanceResponse:
        return await self._onboarding.ConnectInstance(request)

    async def LogoutInstance(
        self, request: reputation_pb2.LogoutInstanceRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.LogoutInstanceResponse:
        return await self._onboarding.LogoutInstance(request)

    async def DeleteInstance(
        self, request: reputation_pb2.DeleteInstanceRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.DeleteInstanceResponse:
        return await self._onboarding.DeleteInstance(request)

    # The generated stub types a streaming behaviour as an iterator; under grpc.aio and the server's guard
    # (libs/rpc/server.py, AsyncStreamBehaviour) it is a coroutine that writes with `context.write`.
    async def WatchInstance(  # type: ignore[override]
        self, request: reputation_pb2.WatchInstanceRequest, context: grpc.aio.ServicerContext
    ) -> None:
        await self._onboarding.WatchInstance(request, context)

    async def GetInstance(
        self, request: reputation_pb2.GetInstanceRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.GetInstanceResponse:
        instance = await self._get(
            GetInstance(organization_id=request.organization_id, instance_id=request.instance_id)
        )
        return reputation_pb2.GetInstanceResponse(instance=instance_to_proto(instance))

    async def ListInstances(
        self, request: reputation_pb2.ListInstancesRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.ListInstancesResponse:
        page = await self._list(
            ListInstances(
                organization_id=request.organization_id,
                page=page_request(request.page_size, request.page_token),
                where=InstanceFilter(
                    provider=enum_from_proto(common_pb2.Provider, request.provider, Provider),
                    purpose=enum_from_proto(common_pb2.Purpose, request.purpose, Purpose),
                    connection_state=enum_from_proto(
                        common_pb2.ConnectionState, request.connection_state, ConnectionState
                    ),
                ),
            )
        )
        return reputation_pb2.ListInstancesResponse(
            instances=[instance_to_proto(i) for i in page.items], next_page_token=page.next_page_token
        )

    async def GetReputation(
        self, request: reputation_pb2.GetReputationRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.GetReputationResponse:
        reputation = await self._get_reputation(
            GetReputation(organization_id=request.organization_id, instance_id=request.instance_id)
        )
        return reputation_pb2.GetReputationResponse(
            reputation=reputation_to_proto(reputation),
            explanation=explanation_to_proto(reputation.explanation) if reputation.explanation else None,
        )

    async def ListReputations(
        self, request: reputation_pb2.ListReputationsRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.ListReputationsResponse:
        page = await self._list_reputations(
            ListReputations(
                organization_id=request.organization_id,
                page=page_request(request.page_size, request.page_token),
                where=ReputationFilter(
                    health=enum_from_proto(reputation_pb2.HealthStatus, request.health, HealthStatus),
                    phase=enum_from_proto(reputation_pb2.WarmupPhase, request.phase, WarmupPhase),
                ),
            )
        )
        return reputation_pb2.ListReputationsResponse(
            reputations=[reputation_to_proto(r) for r in page.items], next_page_token=page.next_page_token
        )

    async def GetWindowStats(
        self, request: reputation_pb2.GetWindowStatsRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.GetWindowStatsResponse:
        counts = await self._window_stats(
            GetWindowStats(
                organization_id=request.organization_id,
                instance_id=request.instance_id,
                window=request.window.ToTimedelta() if request.HasField("window") else None,
            )
        )
        return reputation_pb2.GetWindowStatsResponse(stats=window_counts_to_proto(counts))

    async def ListInstanceStates(
        self, request: reputation_pb2.ListInstanceStatesRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.ListInstanceStatesResponse:
        # Reputation is unset for a number registered before reputations were kept and not evaluated
        # since (version 0 too): readers apply their defaults.
        page = await self._list_states(
            ListInstanceStates(
                organization_id=request.organization_id,
                page=page_request(request.page_size, request.page_token),
            )
        )
        return reputation_pb2.ListInstanceStatesResponse(
            states=[
                reputation_pb2.InstanceState(
                    instance=instance_to_proto(item.instance),
                    reputation=reputation_to_proto(item.reputation) if item.reputation else None,
                )
                for item in page.items
            ],
            next_page_token=page.next_page_token,
        )

    async def GetWarmupPlan(
        self, request: reputation_pb2.GetWarmupPlanRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.GetWarmupPlanResponse:
        return await self._warmup.GetWarmupPlan(request)

    async def GetWarmupSettings(
        self, request: reputation_pb2.GetWarmupSettingsRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.GetWarmupSettingsResponse:
        return await self._warmup.GetWarmupSettings(request)

    async def SetWarmupSettings(
        self, request: reputation_pb2.SetWarmupSettingsRequest, context: grpc.aio.ServicerContext
    ) -> reputation_pb2.SetWarmupSettingsResponse:
        return await self._warmup.SetWarmupSettings(request)
