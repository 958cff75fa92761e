"""Warm-up phases: how far a number has earned WhatsApp's trust, and what moves it.

    NEWBORN --age, volume, healthy ratios--> WARMING --...+ replies--> INTERACTING --...--> STABLE
       ^                                         |                          |                 |
       +------ one phase back on a degradation or time-lock cooldown, or a score under the phase's hold
       +------ back to NEWBORN on a ban (the warm-up starts over)

One step per evaluation at most, in either direction (a ban excepted), and at most one regression per
`regression_interval`: a bad day costs a phase, not the whole warm-up. Advancing needs a clean slate
(HEALTHY, no alert, no cooldown) plus every criterion of the next phase's entry, measured on the week.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from libs.seedwork.errors import Violations, duration_text
from reputation_service.domain.window_stats import WindowStats


class WarmupPhase(StrEnum):
    """Values match whatlead.reputation.v1.WarmupPhase without its prefix."""

    NEWBORN = "NEWBORN"
    WARMING = "WARMING"
    INTERACTING = "INTERACTING"
    STABLE = "STABLE"


PHASES: tuple[WarmupPhase, ...] = tuple(WarmupPhase)


def phase_after(phase: WarmupPhase) -> WarmupPhase | None:
    index = PHASES.index(phase)
    return PHASES[index + 1] if index + 1 < len(PHASES) else None


def phase_before(phase: WarmupPhase) -> WarmupPhase | None:
    index = PHASES.index(phase)
    return PHASES[index - 1] if index > 0 else None


@dataclass(frozen=True, kw_only=True)
class PhaseEntry:
    """What a number must show to enter a phase from the one before it. Ratios are read on the week."""

    min_age: timedelta  # since the instance was registered
    min_dwell: timedelta  # in the phase before
    min_sent_week: int
    min_delivery_ratio: float
    min_reply_ratio: float
    min_score: int


@dataclass(frozen=True, kw_only=True)
class WarmupPolicy:
    """Entry criteria per phase, the score under which a phase is lost, and how often that may happen.

    The ramp follows the Gate's phase caps (30, 150, 600 sends a day): each entry asks for a week of the
    previous phase's traffic delivered well, and INTERACTING onwards for replies (two-way traffic).
    """

    warming: PhaseEntry = PhaseEntry(
        min_age=timedelta(days=3),
        min_dwell=timedelta(days=3),
        min_sent_week=20,
        min_delivery_ratio=0.90,
        min_reply_ratio=0.0,
        min_score=65,
    )
    interacting: PhaseEntry = PhaseEntry(
        min_age=timedelta(days=10),
        min_dwell=timedelta(days=5),
        min_sent_week=100,
        min_delivery_ratio=0.90,
        min_reply_ratio=0.15,
        min_score=70,
    )
    stable: PhaseEntry = PhaseEntry(
        min_age=timedelta(days=21),
        min_dwell=timedelta(days=7),
        min_sent_week=300,
        min_delivery_ratio=0.90,
        min_reply_ratio=0.10,
        min_score=75,
    )
    # Under this score a phase is lost (one step back). NEWBORN has nothing to lose.
    hold_warming: int = 35
    hold_interacting: int = 45
    hold_stable: int = 55
    regression_interval: timedelta = timedelta(hours=24)

    def validate(self, violations: Violations, prefix: str = "warmup") -> None:
        for name in ("warming", "interacting", "stable"):
            entry: PhaseEntry = getattr(self, name)
            for ratio in ("min_delivery_ratio", "min_reply_ratio"):
                value = getattr(entry, ratio)
                violations.check(0 <= value <= 1, f"{prefix}.{name}.{ratio}", "must be between 0 and 1")
            violations.check(
                0 <= entry.min_score <= 100, f"{prefix}.{name}.min_score", "must be between 0 and 100"
            )
            violations.check(entry.min_sent_week >= 0, f"{prefix}.{name}.min_sent_week", "must be >= 0")
        for name in ("hold_warming", "hold_interacting", "hold_stable"):
            value = getattr(self, name)
            violations.check(0 <= value <= 100, f"{prefix}.{name}", "must be between 0 and 100")

    def entry(self, phase: WarmupPhase) -> PhaseEntry | None:
        return {
            WarmupPhase.WARMING: self.warming,
            WarmupPhase.INTERACTING: self.interacting,
            WarmupPhase.STABLE: self.stable,
        }.get(phase)

    def hold_score(self, phase: WarmupPhase) -> int:
        return {
            WarmupPhase.WARMING: self.hold_warming,
            WarmupPhase.INTERACTING: self.hold_interacting,
            WarmupPhase.STABLE: self.hold_stable,
        }.get(phase, 0)


class PhaseChange(StrEnum):
    HELD = "HELD"
    ADVANCED = "ADVANCED"
    REGRESSED = "REGRESSED"
    RESET = "RESET"  # back to NEWBORN after a ban


@dataclass(frozen=True, kw_only=True)
class Criterion:
    """One condition of the next phase's entry, as measured now."""

    name: str
    measured: float
    required: float
    met: bool


@dataclass(frozen=True, kw_only=True)
class PhaseDecision:
    previous: WarmupPhase
    phase: WarmupPhase
    change: PhaseChange
    reason: str
    # The entry criteria of the next phase, met or not, so "why not further?" has an answer.
    criteria: tuple[Criterion, ...] = ()


def decide_phase(
    *,
    phase: WarmupPhase,
    phase_since: datetime,
    regressed_at: datetime | None,
    now: datetime,
    instance_age: timedelta,
    week: WindowStats,
    score: int,
    clean: bool,
    regress_because: str | None,
    reset_because: str | None,
    policy: WarmupPolicy,
) -> PhaseDecision:
    """The phase after one evaluation.

    `clean`: HEALTHY, no alert, no cooldown (the only state a number may advance from).
    `regress_because`: why this evaluation costs a phase (a cooldown it started), or None.
    `reset_because`: why the warm-up starts over (a ban), or None.
    """
    if reset_because is not None:
        change = PhaseChange.RESET if phase is not WarmupPhase.NEWBORN else PhaseChange.HELD
        return PhaseDecision(previous=phase, phase=WarmupPhase.NEWBORN, change=change, reason=reset_because)

    hold = policy.hold_score(phase)
    if regress_because is None and score < hold:
        regress_because = f"score {score} under {phase.value}'s hold score {hold}"
    lower = phase_before(phase)
    if regress_because is not None and lower is not None:
        if regressed_at is not None and now - regressed_at < policy.regression_interval:
            return PhaseDecision(
                previous=phase,
                phase=phase,
                change=PhaseChange.HELD,
                reason=(
                    f"{regress_because}; kept: already regressed within "
                    f"{duration_text(policy.regression_interval)}"
                ),
            )
        return PhaseDecision(
            previous=phase, phase=lower, change=PhaseChange.REGRESSED, reason=regress_because
        )
    if regress_because is not None:
        return PhaseDecision(
            previous=phase, phase=phase, change=PhaseChange.HELD, reason=f"{regress_because}; already NEWBORN"
        )

    higher = phase_after(phase)
    if higher is None:
        return PhaseDecision(previous=phase, phase=phase, change=PhaseChange.HELD, reason="final phase")
    entry = policy.entry(higher)
    assert entry is not None  # every phase after NEWBORN has an entry
    criteria = _entry_criteria(
        entry,
        now=now,
        phase_since=phase_since,
        instance_age=instance_age,
        week=week,
        score=score,
        clean=clean,
    )
    unmet = [c.name for c in criteria if not c.met]
    if unmet:
        return PhaseDecision(
            previous=phase,
            phase=phase,
            change=PhaseChange.HELD,
            reason=f"{higher.value} needs: {', '.join(unmet)}",
            criteria=criteria,
        )
    return PhaseDecision(
        previous=phase,
        phase=higher,
        change=PhaseChange.ADVANCED,
        reason=f"every criterion of {higher.value} met",
        criteria=criteria,
    )


def _entry_criteria(
    entry: PhaseEntry,
    *,
    now: datetime,
    phase_since: datetime,
    instance_age: timedelta,
    week: WindowStats,
    score: int,
    clean: bool,
) -> tuple[Criterion, ...]:
    dwell = now - phase_since
    day = 86400.0
    return (
        Criterion(name="clean", measured=1.0 if clean else 0.0, required=1.0, met=clean),
        Criterion(
            name="age_days",
            measured=instance_age.total_seconds() / day,
            required=entry.min_age.total_seconds() / day,
            met=instance_age >= entry.min_age,
        ),
        Criterion(
            name="days_in_phase",
            measured=dwell.total_seconds() / day,
            required=entry.min_dwell.total_seconds() / day,
            met=dwell >= entry.min_dwell,
        ),
        Criterion(
            name="sent_week",
            measured=float(week.sent),
            required=float(entry.min_sent_week),
            met=week.sent >= entry.min_sent_week,
        ),
        Criterion(
            name="delivery_ratio_week",
            measured=week.delivery_ratio,
            required=entry.min_delivery_ratio,
            met=week.delivery_ratio >= entry.min_delivery_ratio,
        ),
        Criterion(
            name="reply_ratio_week",
            measured=week.reply_ratio,
            required=entry.min_reply_ratio,
            met=week.reply_ratio >= entry.min_reply_ratio,
        ),
        Criterion(
            name="score", measured=float(score), required=float(entry.min_score), met=score >= entry.min_score
        ),
    )
