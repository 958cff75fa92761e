"""The warm-up RPCs of ReputationService: proto -> query -> use case -> proto. `ReputationServicer`
delegates to them."""

from __future__ import annotations

from dataclasses import dataclass

from reputation_service.application.warmup_plans import (
    GetWarmupPlan,
    GetWarmupPlanHandler,
    GetWarmupSettings,
    GetWarmupSettingsHandler,
    SetWarmupSettings,
    SetWarmupSettingsHandler,
)
from reputation_service.infrastructure.warmup_mapping import (
    day_from_proto,
    plan_to_proto,
    settings_from_proto,
    settings_to_proto,
)
from whatlead.reputation.v1 import reputation_pb2


@dataclass(frozen=True, kw_only=True)
class WarmupRpcs:
    get_plan: GetWarmupPlanHandler
    get_settings: GetWarmupSettingsHandler
    set_settings: SetWarmupSettingsHandler

    async def GetWarmupPlan(
        self, request: reputation_pb2.GetWarmupPlanRequest
    ) -> reputation_pb2.GetWarmupPlanResponse:
        plan = await self.get_plan(
            GetWarmupPlan(
                organization_id=request.organization_id,
                instance_id=request.instance_id,
                day=day_from_proto(request.day),
            )
        )
        return reputation_pb2.GetWarmupPlanResponse(plan=plan_to_proto(plan))

    async def GetWarmupSettings(
        self, request: reputation_pb2.GetWarmupSettingsRequest
    ) -> reputation_pb2.GetWarmupSettingsResponse:
        schedule = await self.get_settings(GetWarmupSettings(organization_id=request.organization_id))
        return reputation_pb2.GetWarmupSettingsResponse(settings=settings_to_proto(schedule))

    async def SetWarmupSettings(
        self, request: reputation_pb2.SetWarmupSettingsRequest
    ) -> reputation_pb2.SetWarmupSettingsResponse:
        schedule = await self.set_settings(
            SetWarmupSettings(
                organization_id=request.organization_id, schedule=settings_from_proto(request.settings)
            )
        )
        return reputation_pb2.SetWarmupSettingsResponse(settings=settings_to_proto(schedule))
