"""The audit log: one entry per operator action, written in the action's own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from libs.seedwork.access import Principal
from libs.seedwork.ids import new_id


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    id: str
    organization_id: str
    actor: str
    action: str  # "execution.paused", "plan.set", "api_key.created", …
    target: str  # "instance/<id>", "api_key/<id>", …
    summary: str
    occurred_at: datetime

    @classmethod
    def record(
        cls, *, organization_id: str, actor: str, action: str, target: str, summary: str, now: datetime
    ) -> AuditEntry:
        return cls(
            id=new_id(),
            organization_id=organization_id,
            actor=actor,
            action=action,
            target=target,
            summary=summary,
            occurred_at=now,
        )


def operator_actor(principal: Principal, operator: str) -> str:
    """Who acted, as the audit log and the control show it: the credential, with the operator's own name
    beside it when the request gave one ("alice (key:0193…)"). The name is the caller's word; the
    credential is what was checked."""
    name = operator.strip()
    return f"{name} ({principal.actor})" if name else principal.actor
