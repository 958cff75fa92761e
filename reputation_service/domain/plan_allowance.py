"""How many instances an organization's plan lets it register: ops' `PlanLimits.max_instances`, as this
context keeps it from PlanChanged. 0 is unlimited, and so is an organization whose plan never arrived.

Lowering the cap unregisters nothing: it refuses new registrations until the count is below it.
"""

from __future__ import annotations

from dataclasses import dataclass

from libs.seedwork.errors import FailedPrecondition, Reason


@dataclass(frozen=True, kw_only=True)
class InstanceAllowance:
    organization_id: str
    max_instances: int  # 0: unlimited
    version: int  # the plan's; an older version than the one kept is dropped

    @classmethod
    def unlimited(cls, organization_id: str) -> InstanceAllowance:
        return cls(organization_id=organization_id, max_instances=0, version=0)

    @property
    def is_limited(self) -> bool:
        return self.max_instances > 0

    def supersedes(self, kept: InstanceAllowance | None) -> bool:
        return kept is None or self.version > kept.version


class WithinInstanceCap:
    """A registration is refused once the organization has as many instances as its plan allows."""

    @staticmethod
    def check(allowance: InstanceAllowance, registered: int) -> None:
        if allowance.is_limited and registered >= allowance.max_instances:
            n = allowance.max_instances
            raise FailedPrecondition(
                f"the plan allows {n} instance{'' if n == 1 else 's'} and the organization has {registered} "
                "registered; raise the plan's max_instances to register more",
                reason=Reason.INSTANCE_LIMIT_REACHED,
                metadata={"max_instances": str(n)},
            )
