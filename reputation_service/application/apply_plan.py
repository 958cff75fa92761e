"""ApplyPlanChange: ops changed an organization's plan; keep its instance cap (newer versions only)."""

from __future__ import annotations

from dataclasses import dataclass

from reputation_service.domain.plan_allowance import InstanceAllowance
from reputation_service.domain.ports import ReputationUnitOfWork


@dataclass(frozen=True, kw_only=True)
class ApplyPlanChange:
    organization_id: str
    max_instances: int
    version: int


class ApplyPlanChangeHandler:
    """Runs in the consumer's transaction (its inbox row with it). A redelivered or reordered older plan
    changes nothing; a negative cap (never valid in ops) reads as unlimited rather than refusing all."""

    async def __call__(self, uow: ReputationUnitOfWork, command: ApplyPlanChange) -> bool:
        return await uow.allowances.save_if_newer(
            InstanceAllowance(
                organization_id=command.organization_id,
                max_instances=max(command.max_instances, 0),
                version=command.version,
            )
        )
