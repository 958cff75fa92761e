"""The HealthProber port over libs.providers.health: the same adapters (and credentials) as the sends."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from executor_service.application.ports import ProbeFailed
from executor_service.domain.instance import CappingLevel, InstanceHealth
from executor_service.infrastructure.provider_directory import ProviderDirectory
from libs.providers.capabilities import ProviderProfile
from libs.providers.health import can_probe, probe_health
from libs.providers.port import ProviderError
from libs.seedwork.shared_kernel import ConnectionState, Provider

_MAX_REASON = 200


class ProviderHealthProber:
    """Probes an instance through the adapter its sends use; a provider without a health check (per the
    provider's profile) or without an endpoint here is not probed."""

    def __init__(self, directory: ProviderDirectory, *, timeout_seconds: float) -> None:
        self._directory = directory
        self._timeout = timeout_seconds

    def providers(self) -> Sequence[Provider]:
        return self._directory.configured()

    def can_probe(self, profile: ProviderProfile, instance_ref: str) -> bool:
        return self._directory.adapter(profile.provider, instance_ref) is not None and can_probe(profile)

    async def probe(self, profile: ProviderProfile, instance_ref: str) -> InstanceHealth:
        adapter = self._directory.adapter(profile.provider, instance_ref)
        if adapter is None:
            raise ProbeFailed("provider_not_configured")
        try:
            health = await asyncio.wait_for(probe_health(adapter, profile, instance_ref), self._timeout)
        except ProviderError as error:
            raise ProbeFailed(error.code[:64]) from error
        except TimeoutError as error:
            raise ProbeFailed("timeout") from error
        return InstanceHealth(
            connection=ConnectionState(health.connection.value) if health.connection is not None else None,
            connection_reason=health.connection_reason[:_MAX_REASON],
            timelocked=health.timelocked,
            timelock_until=health.timelock_until,
            capping=CappingLevel(health.capping.value) if health.capping is not None else None,
            quota_used=health.quota_used,
            quota_total=health.quota_total,
        )
