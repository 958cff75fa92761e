"""The kill-switch as the services that obey it see it: ops' control of one scope, projected from
`ExecutionControlChanged`. The Gate and the Executor keep the same projection; what each does with it (the
Gate refuses or parks, the Executor holds a job) stays in its own domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from libs.seedwork.shared_kernel import ControlScope

ControlKey = tuple[str, ControlScope, str]  # (organization id, scope, scope id)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionControl:
    """One scope's switch. `paused_until` None while paused means "until resumed"; no control = ACTIVE.
    `scope_id` is the instance or campaign id, or the organization id for ORGANIZATION."""

    organization_id: str
    scope: ControlScope
    scope_id: str
    paused: bool
    paused_until: datetime | None
    version: int  # ops numbers every change of a scope
    updated_at: datetime  # when ops changed it

    @property
    def key(self) -> ControlKey:
        """What identifies the scope: a newer version of the same key replaces this control."""
        return (self.organization_id, self.scope, self.scope_id)

    def holds(self, now: datetime) -> bool:
        """Paused now: a timed pause ends by itself when its time comes, with no event to say so."""
        return self.paused and (self.paused_until is None or now < self.paused_until)

    def supersedes(self, other: ExecutionControl | None) -> bool:
        """Ops numbers every change of a scope; an older (redelivered, reordered) version is dropped.
        Versions of different scopes do not compare."""
        if other is None:
            return True
        if other.key != self.key:
            raise ValueError(f"control of {self.key} compared with the control of {other.key}")
        return self.version > other.version
