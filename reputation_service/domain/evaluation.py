"""Evaluation: from window statistics to a score, a health, alerts, a cooldown and a warm-up phase.

A pure function of (previous state, windows, thresholds, now, instance age): no I/O, no clock, no
randomness. The same inputs give the same Evaluation, and EVALUATION_VERSION names the rules that made it.

    windows --score terms------> score 0..100 ----------------------------+--> health
            --alert checks-----> alerts at review level (DEGRADED) -------+
                                 alerts at pause level --> cooldown (escalated on repeats)
    previous state (phase, cooldowns, history) --------------------------+--> warm-up phase

Degradation is inferred from the numbers; no explicit ban or report is needed. A provider restriction
(463 time-lock, ban) does not wait for the windows: `restriction_cooldown` cools the number the moment
its signal arrives, and `evaluate` catches one the signal path missed.

Health and cooldown are separate on purpose: the Gate refuses an UNHEALTHY number for good (FINAL) but
waits out a cooldown (RECOVERABLE, COOLDOWN_ACTIVE), so a cooldown never makes a number UNHEALTHY.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime, timedelta
from enum import Enum, StrEnum

from libs.seedwork.errors import InvariantViolated, Violations
from reputation_service.domain.warmup import (
    PhaseChange,
    PhaseDecision,
    WarmupPhase,
    WarmupPolicy,
    decide_phase,
)
from reputation_service.domain.window_stats import Window, WindowSet, WindowStats

# Bump on any change to the rules or defaults below: stored evaluations say which rules made them.
EVALUATION_VERSION = 1
# No evidence either way; the Gate assumes the same score for a number it has not heard about.
BASELINE_SCORE = 70


class HealthStatus(StrEnum):
    """Values match whatlead.reputation.v1.HealthStatus without its prefix."""

    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"  # still chosen, at reduced caps
    UNHEALTHY = "UNHEALTHY"  # not chosen by the Gate


class ReputationAlert(StrEnum):
    """Values match whatlead.reputation.v1.ReputationAlert without its prefix; declared in its order."""

    DELIVERY_DROP = "DELIVERY_DROP"
    SEND_DELAY_SPIKE = "SEND_DELAY_SPIKE"
    FREQUENT_DISCONNECTS = "FREQUENT_DISCONNECTS"
    HIGH_FAILURE_RATE = "HIGH_FAILURE_RATE"
    LOW_ENGAGEMENT = "LOW_ENGAGEMENT"
    ACK_TIMEOUTS = "ACK_TIMEOUTS"
    RESTRICTED = "RESTRICTED"


class CooldownReason(StrEnum):
    """Values match whatlead.reputation.v1.CooldownReason without its prefix."""

    REACHOUT_TIMELOCK = "REACHOUT_TIMELOCK"
    TEMPORARY_BAN = "TEMPORARY_BAN"
    DEGRADATION = "DEGRADATION"
    CONNECTION_INSTABILITY = "CONNECTION_INSTABILITY"


class RestrictionKind(StrEnum):
    """Values match whatlead.common.v1.RestrictionKind without its prefix."""

    REACHOUT_TIMELOCK = "REACHOUT_TIMELOCK"
    TEMPORARY_BAN = "TEMPORARY_BAN"
    PERMANENT_BAN = "PERMANENT_BAN"
    LOGGED_OUT = "LOGGED_OUT"
    DISCONNECTED = "DISCONNECTED"
    UNAUTHORIZED = "UNAUTHORIZED"


class AlertLevel(StrEnum):
    CLEAR = "CLEAR"
    REVIEW = "REVIEW"  # DEGRADED: the Gate lowers the number's caps
    PAUSE = "PAUSE"  # an automatic cooldown
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"  # under the minimum volume, or nothing measured


class Metric(StrEnum):
    DELIVERY_RATIO = "DELIVERY_RATIO"  # delivered / sent
    READ_RATIO = "READ_RATIO"  # read / delivered
    REPLY_RATIO = "REPLY_RATIO"  # replied / delivered
    ENGAGEMENT_RATIO = "ENGAGEMENT_RATIO"  # max(read ratio, reply ratio)
    FAILURE_RATIO = "FAILURE_RATIO"  # failed / (sent + failed)
    ACK_TIMEOUT_RATIO = "ACK_TIMEOUT_RATIO"  # ack timeouts / sent
    ACK_LATENCY_P50_MS = "ACK_LATENCY_P50_MS"
    ACK_LATENCY_P95_MS = "ACK_LATENCY_P95_MS"
    CONNECTION_EVENTS = "CONNECTION_EVENTS"  # disconnects + connection errors
    RESTRICTIONS = "RESTRICTIONS"  # time-locks + bans


_LOWER_IS_WORSE = frozenset(
    {Metric.DELIVERY_RATIO, Metric.READ_RATIO, Metric.REPLY_RATIO, Metric.ENGAGEMENT_RATIO}
)
_ALERT_ORDER = {alert: index for index, alert in enumerate(ReputationAlert)}


# Each metric: its value in a window (None: nothing to measure it on), and the count its minimum volume
# applies to (its denominator).
_MEASURE: dict[Metric, Callable[[WindowStats], float | None]] = {
    Metric.DELIVERY_RATIO: lambda s: s.delivery_ratio,
    Metric.READ_RATIO: lambda s: s.read_ratio,
    Metric.REPLY_RATIO: lambda s: s.reply_ratio,
    Metric.ENGAGEMENT_RATIO: lambda s: s.engagement_ratio,
    Metric.FAILURE_RATIO: lambda s: s.failure_ratio,
    Metric.ACK_TIMEOUT_RATIO: lambda s: s.ack_timeout_ratio,
    Metric.ACK_LATENCY_P50_MS: lambda s: s.ack_latency_p50_ms,
    Metric.ACK_LATENCY_P95_MS: lambda s: s.ack_latency_p95_ms,
    Metric.CONNECTION_EVENTS: lambda s: float(s.connection_events),
    Metric.RESTRICTIONS: lambda s: float(s.restrictions),
}
_VOLUME: dict[Metric, Callable[[WindowStats], int]] = {
    Metric.DELIVERY_RATIO: lambda s: s.sent,
    Metric.READ_RATIO: lambda s: s.delivered,
    Metric.REPLY_RATIO: lambda s: s.delivered,
    Metric.ENGAGEMENT_RATIO: lambda s: s.delivered,
    Metric.FAILURE_RATIO: lambda s: s.attempts,
    Metric.ACK_TIMEOUT_RATIO: lambda s: s.sent,
    Metric.ACK_LATENCY_P50_MS: lambda s: s.delivered,
    Metric.ACK_LATENCY_P95_MS: lambda s: s.delivered,
    Metric.CONNECTION_EVENTS: lambda s: s.connection_events,
    Metric.RESTRICTIONS: lambda s: s.restrictions,
}


def measure(metric: Metric, stats: WindowStats) -> float | None:
    """The metric's value in one window; None when the window has nothing to measure it on."""
    return _MEASURE[metric](stats)


def volume(metric: Metric, stats: WindowStats) -> int:
    """The count a metric's minimum volume applies to (its denominator)."""
    return _VOLUME[metric](stats)


# ---------------------------------------------------------------------------------------------- thresholds


@dataclass(frozen=True, kw_only=True)
class AlertCheck:
    """One alert's limit measured on one window: the explanation's line for it."""

    alert: ReputationAlert
    metric: Metric
    window: Window
    measured: float | None
    volume: int
    min_volume: int
    review: float
    pause: float | None  # None: the pause level is not judged on this window (or there is none)
    lower_is_worse: bool
    level: AlertLevel


@dataclass(frozen=True, kw_only=True)
class Limit:
    """Two levels for one alert, as Amazon SES has for bounces: `review` makes the number DEGRADED,
    `pause` cools it down. A ratio where lower is worse fires strictly under its level (delivery < 0.80);
    everything else fires at or over it (failure ratio >= 0.05).

    The pause level is judged on `pause_window` only (the last hour by default): a cooldown stops the
    sends, so the evidence that started it leaves that window while it lasts, and only fresh evidence
    starts the next, longer one. Review levels are judged on every window in `windows`.
    """

    alert: ReputationAlert
    metric: Metric
    review: float
    pause: float | None = None  # None: this alert alone never cools a number
    min_volume: int = 0
    windows: tuple[Window, ...] = (Window.HOUR, Window.DAY)
    pause_window: Window = Window.HOUR

    @property
    def lower_is_worse(self) -> bool:
        return self.metric in _LOWER_IS_WORSE

    def reached(self, value: float, level: float) -> bool:
        return value < level if self.lower_is_worse else value >= level

    def check(self, stats: WindowStats) -> AlertCheck:
        value = measure(self.metric, stats)
        count = volume(self.metric, stats)
        pause = self.pause if stats.window is self.pause_window else None
        if value is None or count < self.min_volume:
            level = AlertLevel.INSUFFICIENT_DATA
        elif pause is not None and self.reached(value, pause):
            level = AlertLevel.PAUSE
        elif self.reached(value, self.review):
            level = AlertLevel.REVIEW
        else:
            level = AlertLevel.CLEAR
        return AlertCheck(
            alert=self.alert,
            metric=self.metric,
            window=stats.window,
            measured=value,
            volume=count,
            min_volume=self.min_volume,
            review=self.review,
            pause=pause,
            lower_is_worse=self.lower_is_worse,
            level=level,
        )

    def validate(self, violations: Violations, name: str) -> None:
        violations.check(bool(self.windows), f"{name}.windows", "must name at least one window")
        violations.check(self.min_volume >= 0, f"{name}.min_volume", "must be >= 0")
        if self.lower_is_worse:
            violations.check(0 <= self.review <= 1, f"{name}.review", "is a ratio: must be between 0 and 1")
        else:
            # At or over 0 would fire on a perfectly quiet window.
            violations.check(self.review > 0, f"{name}.review", "must be > 0")
        if self.pause is not None:
            violations.check(
                self.pause_window in self.windows, f"{name}.pause_window", "must be one of its windows"
            )
            stricter = self.pause <= self.review if self.lower_is_worse else self.pause >= self.review
            violations.check(stricter, f"{name}.pause", "must be at least as severe as the review level")


@dataclass(frozen=True, kw_only=True)
class CooldownLadder:
    """How long each cooldown of one reason lasts: the first, the first repeat, ... then the last again."""

    steps: tuple[timedelta, ...]

    def duration(self, step: int) -> timedelta:
        return self.steps[min(step, len(self.steps) - 1)]


_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """An organization's limits; the defaults are the documented starting point (docs/reputation.md)."""

    delivery_drop: Limit = Limit(
        alert=ReputationAlert.DELIVERY_DROP,
        metric=Metric.DELIVERY_RATIO,
        review=0.80,
        pause=0.50,
        min_volume=20,
    )
    send_delay_p50: Limit = Limit(
        alert=ReputationAlert.SEND_DELAY_SPIKE,
        metric=Metric.ACK_LATENCY_P50_MS,
        review=30_000,
        pause=120_000,
        min_volume=10,
    )
    send_delay_p95: Limit = Limit(
        alert=ReputationAlert.SEND_DELAY_SPIKE,
        metric=Metric.ACK_LATENCY_P95_MS,
        review=300_000,
        pause=1_800_000,
        min_volume=10,
    )
    frequent_disconnects: Limit = Limit(
        alert=ReputationAlert.FREQUENT_DISCONNECTS,
        metric=Metric.CONNECTION_EVENTS,
        review=3,
        pause=6,
        windows=(Window.HOUR,),
    )
    high_failure_rate: Limit = Limit(
        alert=ReputationAlert.HIGH_FAILURE_RATE,
        metric=Metric.FAILURE_RATIO,
        review=0.05,
        pause=0.10,
        min_volume=20,
    )
    ack_timeouts: Limit = Limit(
        alert=ReputationAlert.ACK_TIMEOUTS,
        metric=Metric.ACK_TIMEOUT_RATIO,
        review=0.05,
        pause=0.15,
        min_volume=20,
    )
    low_engagement: Limit = Limit(
        alert=ReputationAlert.LOW_ENGAGEMENT,
        metric=Metric.ENGAGEMENT_RATIO,
        review=0.20,
        min_volume=50,
        windows=(Window.WEEK,),
        pause_window=Window.WEEK,
    )
    # Its pause is the restriction cooldown itself (restriction_cooldown); the review level keeps the number
    # DEGRADED for the rest of the day after a time-lock or a ban.
    restricted: Limit = Limit(
        alert=ReputationAlert.RESTRICTED, metric=Metric.RESTRICTIONS, review=1, windows=(Window.DAY,)
    )
    # This many different alerts at review level in the last hour count as the pause level (0: never).
    pause_on_review_alerts: int = 3
    degraded_below: int = 55
    unhealthy_below: int = 20
    timelock_cooldowns: CooldownLadder = CooldownLadder(
        steps=(30 * _MINUTE, 2 * _HOUR, 8 * _HOUR, 24 * _HOUR)
    )
    temporary_ban_cooldowns: CooldownLadder = CooldownLadder(steps=(24 * _HOUR, 72 * _HOUR, 168 * _HOUR))
    degradation_cooldowns: CooldownLadder = CooldownLadder(
        steps=(1 * _HOUR, 4 * _HOUR, 12 * _HOUR, 24 * _HOUR)
    )
    instability_cooldowns: CooldownLadder = CooldownLadder(steps=(1 * _HOUR, 2 * _HOUR, 4 * _HOUR, 8 * _HOUR))
    # A cooldown counts as a repeat of an earlier one of the same reason started within this period.
    escalation_memory: timedelta = timedelta(hours=48)
    warmup: WarmupPolicy = field(default_factory=WarmupPolicy)

    def __post_init__(self) -> None:
        violations = Violations()
        for name, alert in _LIMIT_FIELDS.items():
            limit: Limit = getattr(self, name)
            violations.check(limit.alert is alert, f"{name}.alert", f"must be {alert.value}")
            limit.validate(violations, name)
        violations.check(self.pause_on_review_alerts >= 0, "pause_on_review_alerts", "must be >= 0")
        violations.check(
            0 <= self.unhealthy_below <= self.degraded_below <= 100,
            "degraded_below",
            "must hold 0 <= unhealthy_below <= degraded_below <= 100",
        )
        for reason in CooldownReason:
            ladder = self.ladder(reason)
            name = _LADDER_FIELDS[reason]
            violations.check(bool(ladder.steps), name, "must have at least one step")
            violations.check(
                all(step > timedelta(0) for step in ladder.steps), name, "steps must be positive"
            )
        # An inferred cooldown shorter than the hour would end with its own evidence still in the window,
        # and that evidence would start the next one.
        for reason in (CooldownReason.DEGRADATION, CooldownReason.CONNECTION_INSTABILITY):
            ladder = self.ladder(reason)
            violations.check(
                not ladder.steps or ladder.steps[0] >= _HOUR,
                _LADDER_FIELDS[reason],
                "must start at 1 hour or more",
            )
        violations.check(self.escalation_memory > timedelta(0), "escalation_memory", "must be positive")
        self.warmup.validate(violations)
        violations.raise_if_any()

    def limits(self) -> tuple[Limit, ...]:
        return tuple(getattr(self, name) for name in _LIMIT_FIELDS)

    def ladder(self, reason: CooldownReason) -> CooldownLadder:
        ladder: CooldownLadder = getattr(self, _LADDER_FIELDS[reason])
        return ladder


_LIMIT_FIELDS = {
    "delivery_drop": ReputationAlert.DELIVERY_DROP,
    "send_delay_p50": ReputationAlert.SEND_DELAY_SPIKE,
    "send_delay_p95": ReputationAlert.SEND_DELAY_SPIKE,
    "frequent_disconnects": ReputationAlert.FREQUENT_DISCONNECTS,
    "high_failure_rate": ReputationAlert.HIGH_FAILURE_RATE,
    "ack_timeouts": ReputationAlert.ACK_TIMEOUTS,
    "low_engagement": ReputationAlert.LOW_ENGAGEMENT,
    "restricted": ReputationAlert.RESTRICTED,
}
_LADDER_FIELDS = {
    CooldownReason.REACHOUT_TIMELOCK: "timelock_cooldowns",
    CooldownReason.TEMPORARY_BAN: "temporary_ban_cooldowns",
    CooldownReason.DEGRADATION: "degradation_cooldowns",
    CooldownReason.CONNECTION_INSTABILITY: "instability_cooldowns",
}

DEFAULT_THRESHOLDS = Thresholds()


# ------------------------------------------------------------------------------------------- the state


@dataclass(frozen=True, kw_only=True)
class CooldownRecord:
    """A cooldown that was started, kept while it may still count as a repeat."""

    reason: CooldownReason
    started_at: datetime
    until: datetime


@dataclass(frozen=True, kw_only=True)
class ReputationState:
    """What persists between evaluations of one instance."""

    score: int
    health: HealthStatus
    phase: WarmupPhase
    phase_since: datetime
    regressed_at: datetime | None = None
    cooldown_until: datetime | None = None
    cooldown_reason: CooldownReason | None = None
    cooldown_history: tuple[CooldownRecord, ...] = ()
    alerts: tuple[ReputationAlert, ...] = ()
    banned_at: datetime | None = None  # a permanent ban: UNHEALTHY from then on
    evaluated_at: datetime | None = None
    version: int = 0  # grows by one with every evaluation
    evaluation_version: int = EVALUATION_VERSION

    @classmethod
    def initial(cls, *, now: datetime, phase: WarmupPhase = WarmupPhase.NEWBORN) -> ReputationState:
        """A number the reputation context has just met: baseline score, no evidence either way."""
        _require_aware(now)
        return cls(score=BASELINE_SCORE, health=HealthStatus.HEALTHY, phase=phase, phase_since=now)

    def cooling_down(self, now: datetime) -> bool:
        return self.cooldown_until is not None and self.cooldown_until > now


# ------------------------------------------------------------------------------------------ the result


@dataclass(frozen=True, kw_only=True)
class ScoreTerm:
    """One part of the score: the parts of an explanation add up to the score exactly."""

    name: str
    contribution: int
    measured: float | None = None  # the value the term read (recency-weighted across windows)
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class CooldownDecision:
    """A cooldown this evaluation started (or extended): what CooldownStarted announces."""

    reason: CooldownReason
    started_at: datetime
    until: datetime
    step: int  # 0: the first of its reason within the escalation memory; 1: the first repeat; ...
    restriction: RestrictionKind | None  # when a provider restriction caused it
    alerts: tuple[ReputationAlert, ...]  # when inferred from alerts at pause level
    cause: str
    extended: bool = False  # the same episode reported again with a later end: no escalation

    @property
    def duration(self) -> timedelta:
        return self.until - self.started_at


@dataclass(frozen=True, kw_only=True)
class Explanation:
    """Why the state is what it is: every input, every score term, every alert check and each decision."""

    evaluation_version: int
    evaluated_at: datetime
    trigger: str  # "windows", or "restriction:<kind>"
    instance_age: timedelta | None
    windows: WindowSet | None
    thresholds: Thresholds
    previous_score: int
    terms: tuple[ScoreTerm, ...]
    score: int
    alert_checks: tuple[AlertCheck, ...]
    health: HealthStatus
    health_reason: str
    phase: PhaseDecision
    cooldown: CooldownDecision | None
    cooldown_note: str

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-ready values (enums by name, times in ISO 8601, durations in seconds), to store."""
        plain = _plain(self)
        assert isinstance(plain, dict)
        return plain


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    previous: ReputationState
    state: ReputationState
    explanation: Explanation
    cooldown_started: CooldownDecision | None

    @property
    def changed(self) -> bool:
        """Whether anything another context sees moved: worth a ReputationEvaluated."""
        before, after = self.previous, self.state
        return (
            before.score != after.score
            or before.health is not after.health
            or before.phase is not after.phase
            or before.cooldown_until != after.cooldown_until
            or before.cooldown_reason is not after.cooldown_reason
            or before.alerts != after.alerts
        )


# -------------------------------------------------------------------------------------------- scoring

# The three windows are nested, so the last hour weighs in all three: recent evidence counts most.
_RECENCY_WEIGHT = {Window.HOUR: 0.5, Window.DAY: 0.3, Window.WEEK: 0.2}
_MIN_TERM_VOLUME = 10
_TIMELOCK_POINTS_DAY = 15
_TIMELOCK_POINTS_WEEK = 5
_BAN_POINTS_WEEK = 30
_RESTRICTION_FLOOR = -50
_CONNECTION_POINTS_HOUR = 4.0
_CONNECTION_POINTS_DAY = 0.5
_CONNECTION_FLOOR = -20


@dataclass(frozen=True, kw_only=True)
class _Slope:
    """Points that move linearly from (start, at_start) to (end, at_end), flat beyond either end."""

    name: str
    metric: Metric
    start: float
    at_start: float
    end: float
    at_end: float

    def points(self, value: float) -> float:
        if value <= self.start:
            return self.at_start
        if value >= self.end:
            return self.at_end
        return self.at_start + (self.at_end - self.at_start) * (value - self.start) / (self.end - self.start)


_SLOPES = (
    _Slope(name="delivery", metric=Metric.DELIVERY_RATIO, start=0.50, at_start=-40, end=0.95, at_end=10),
    _Slope(name="reads", metric=Metric.READ_RATIO, start=0.10, at_start=-10, end=0.60, at_end=10),
    _Slope(name="replies", metric=Metric.REPLY_RATIO, start=0.02, at_start=-5, end=0.25, at_end=15),
    _Slope(name="failures", metric=Metric.FAILURE_RATIO, start=0.0, at_start=0, end=0.10, at_end=-25),
    _Slope(name="ack_timeouts", metric=Metric.ACK_TIMEOUT_RATIO, start=0.0, at_start=0, end=0.15, at_end=-15),
    _Slope(
        name="ack_latency_p50",
        metric=Metric.ACK_LATENCY_P50_MS,
        start=10_000,
        at_start=0,
        end=120_000,
        at_end=-10,
    ),
    _Slope(
        name="ack_latency_p95",
        metric=Metric.ACK_LATENCY_P95_MS,
        start=60_000,
        at_start=0,
        end=1_800_000,
        at_end=-10,
    ),
)


def _slope_term(slope: _Slope, windows: WindowSet) -> ScoreTerm:
    weighted = 0.0
    weights = 0.0
    parts = []
    for window in Window:
        stats = windows.of(window)
        value = measure(slope.metric, stats)
        count = volume(slope.metric, stats)
        if value is None or count < _MIN_TERM_VOLUME:
            continue
        weighted += _RECENCY_WEIGHT[window] * value
        weights += _RECENCY_WEIGHT[window]
        parts.append(f"{window.value.lower()} {value:.4g} (n={count})")
    if not weights:
        return ScoreTerm(
            name=slope.name,
            contribution=0,
            detail=f"no window with a value and at least {_MIN_TERM_VOLUME} to measure it on",
        )
    value = weighted / weights
    return ScoreTerm(
        name=slope.name, contribution=round(slope.points(value)), measured=value, detail=", ".join(parts)
    )


def _score_terms(windows: WindowSet) -> tuple[ScoreTerm, ...]:
    terms = [ScoreTerm(name="baseline", contribution=BASELINE_SCORE)]
    terms.extend(_slope_term(slope, windows) for slope in _SLOPES)
    hour, day, week = (
        windows.hour.connection_events,
        windows.day.connection_events,
        windows.week.connection_events,
    )
    connection = max(_CONNECTION_FLOOR, -(_CONNECTION_POINTS_HOUR * hour + _CONNECTION_POINTS_DAY * day))
    terms.append(
        ScoreTerm(
            name="connection",
            contribution=round(connection),
            measured=float(hour),
            detail=f"disconnects and errors: hour {hour}, day {day}, week {week}",
        )
    )
    restriction = max(
        _RESTRICTION_FLOOR,
        -(
            _TIMELOCK_POINTS_DAY * windows.day.timelocks
            + _TIMELOCK_POINTS_WEEK * windows.week.timelocks
            + _BAN_POINTS_WEEK * windows.week.bans
        ),
    )
    terms.append(
        ScoreTerm(
            name="restrictions",
            contribution=restriction,
            measured=float(windows.week.restrictions),
            detail=(
                f"time-locks: day {windows.day.timelocks}, week {windows.week.timelocks}; "
                f"bans: week {windows.week.bans}"
            ),
        )
    )
    return tuple(terms)


def _bounded(terms: list[ScoreTerm]) -> tuple[tuple[ScoreTerm, ...], int]:
    """The score in 0..100, with the clipping as a term of its own so the terms still add up."""
    raw = sum(term.contribution for term in terms)
    score = max(0, min(100, raw))
    if score != raw:
        terms = [
            *terms,
            ScoreTerm(name="bounds", contribution=score - raw, detail=f"{raw} clipped to 0..100"),
        ]
    return tuple(terms), score


# ---------------------------------------------------------------------------------------------- health


def _health(
    *, score: int, alerts: tuple[ReputationAlert, ...], banned: bool, thresholds: Thresholds
) -> tuple[HealthStatus, str]:
    if banned:
        return HealthStatus.UNHEALTHY, "permanently banned"
    if score < thresholds.unhealthy_below:
        return HealthStatus.UNHEALTHY, f"score {score} under {thresholds.unhealthy_below}"
    if alerts:
        return HealthStatus.DEGRADED, "alerts: " + ", ".join(alert.value for alert in alerts)
    if score < thresholds.degraded_below:
        return HealthStatus.DEGRADED, f"score {score} under {thresholds.degraded_below}"
    return HealthStatus.HEALTHY, "no alert, score at or over " + str(thresholds.degraded_below)


# ------------------------------------------------------------------------------------------- cooldowns


def _recent(
    history: tuple[CooldownRecord, ...], now: datetime, memory: timedelta
) -> tuple[CooldownRecord, ...]:
    return tuple(record for record in history if record.started_at > now - memory or record.until > now)


def _escalation_step(history: tuple[CooldownRecord, ...], reason: CooldownReason) -> int:
    return sum(1 for record in history if record.reason is reason)


def _ongoing(
    history: tuple[CooldownRecord, ...], reason: CooldownReason, now: datetime
) -> CooldownRecord | None:
    """The record of a cooldown of this reason that has not ended yet: reports now are the same episode."""
    ongoing = [record for record in history if record.reason is reason and record.until > now]
    return max(ongoing, key=lambda record: record.until) if ongoing else None


def _propose(
    *,
    reason: CooldownReason,
    history: tuple[CooldownRecord, ...],
    now: datetime,
    thresholds: Thresholds,
    restriction: RestrictionKind | None = None,
    alerts: tuple[ReputationAlert, ...] = (),
    provider_until: datetime | None = None,
    cause: str,
) -> CooldownDecision:
    step = _escalation_step(history, reason)
    until = now + thresholds.ladder(reason).duration(step)
    if provider_until is not None and provider_until > until:
        until = provider_until  # the provider's own end, when it says one, is never cut short
    return CooldownDecision(
        reason=reason,
        started_at=now,
        until=until,
        step=step,
        restriction=restriction,
        alerts=alerts,
        cause=cause,
    )


_CONNECTION_SYMPTOMS = frozenset(
    {ReputationAlert.FREQUENT_DISCONNECTS, ReputationAlert.SEND_DELAY_SPIKE, ReputationAlert.ACK_TIMEOUTS}
)
_RESTRICTION_REASON = {
    RestrictionKind.REACHOUT_TIMELOCK: CooldownReason.REACHOUT_TIMELOCK,
    RestrictionKind.TEMPORARY_BAN: CooldownReason.TEMPORARY_BAN,
}


def _window_cooldown(
    *,
    previous: ReputationState,
    windows: WindowSet,
    checks: tuple[AlertCheck, ...],
    history: tuple[CooldownRecord, ...],
    now: datetime,
    thresholds: Thresholds,
) -> tuple[CooldownDecision | None, str]:
    """The cooldown the windows call for, if any outlasts the one in force; and a note saying why."""
    proposals: list[CooldownDecision] = []
    # A restriction in the last hour that no cooldown answered yet (its signal path missed it).
    for kind, count in (
        (RestrictionKind.REACHOUT_TIMELOCK, windows.hour.timelocks),
        (RestrictionKind.TEMPORARY_BAN, windows.hour.bans),
    ):
        reason = _RESTRICTION_REASON[kind]
        answered = any(
            record.reason is reason and (record.until > now or record.started_at > now - _HOUR)
            for record in history
        )
        if count and not answered:
            proposals.append(
                _propose(
                    reason=reason,
                    history=history,
                    now=now,
                    thresholds=thresholds,
                    restriction=kind,
                    alerts=(ReputationAlert.RESTRICTED,),
                    cause=f"{count} {kind.value} in the last hour with no cooldown yet",
                )
            )
    active = previous.cooling_down(now)
    if not active:
        paused = _sorted_alerts({c.alert for c in checks if c.level is AlertLevel.PAUSE})
        fresh = _sorted_alerts(
            {
                c.alert
                for c in checks
                if c.window is Window.HOUR and c.level in (AlertLevel.REVIEW, AlertLevel.PAUSE)
            }
        )
        combined = 0 < thresholds.pause_on_review_alerts <= len(fresh)
        if paused or combined:
            # Disconnects explain slow and missing acks too; a delivery drop or failures they do not.
            instability = (
                ReputationAlert.FREQUENT_DISCONNECTS in paused and set(paused) <= _CONNECTION_SYMPTOMS
            )
            reason = CooldownReason.CONNECTION_INSTABILITY if instability else CooldownReason.DEGRADATION
            cause = (
                "pause level: " + ", ".join(a.value for a in paused)
                if paused
                else f"{len(fresh)} alerts at review level in the last hour: "
                + ", ".join(a.value for a in fresh)
            )
            proposals.append(
                _propose(
                    reason=reason,
                    history=history,
                    now=now,
                    thresholds=thresholds,
                    alerts=paused or fresh,
                    cause=cause,
                )
            )
    floor = previous.cooldown_until if active and previous.cooldown_until is not None else now
    chosen: CooldownDecision | None = None
    for proposal in proposals:
        if proposal.until > floor and (chosen is None or proposal.until > chosen.until):
            chosen = proposal
    if chosen is not None:
        return chosen, chosen.cause
    if active:
        return None, f"{previous.cooldown_reason} cooldown in force until {_iso(previous.cooldown_until)}"
    return None, "no cooldown"


# ------------------------------------------------------------------------------------------ evaluate


def evaluate(
    previous: ReputationState,
    windows: WindowSet,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    *,
    now: datetime,
    instance_age: timedelta,
) -> Evaluation:
    """Evaluate one instance from its windows: the state to store, its explanation, and the cooldown to
    announce (None: no new one)."""
    _require_aware(now)
    if instance_age < timedelta(0):
        raise InvariantViolated("instance_age cannot be negative")
    banned = previous.banned_at is not None
    terms = list(_score_terms(windows))
    if banned:
        raw = sum(term.contribution for term in terms)
        terms.append(ScoreTerm(name="permanent ban", contribution=-raw, detail="a banned number scores 0"))
    bounded_terms, score = _bounded(terms)

    checks = tuple(
        limit.check(windows.of(window)) for limit in thresholds.limits() for window in limit.windows
    )
    alerts = _sorted_alerts({c.alert for c in checks if c.level in (AlertLevel.REVIEW, AlertLevel.PAUSE)})

    history = _recent(previous.cooldown_history, now, thresholds.escalation_memory)
    if banned:
        started, note = None, "permanently banned: no cooldown, the number is not chosen"
    else:
        started, note = _window_cooldown(
            previous=previous, windows=windows, checks=checks, history=history, now=now, thresholds=thresholds
        )
    if started is not None:
        history = (*history, CooldownRecord(reason=started.reason, started_at=now, until=started.until))
        cooldown_until: datetime | None = started.until
        cooldown_reason: CooldownReason | None = started.reason
    elif previous.cooling_down(now) and not banned:
        cooldown_until, cooldown_reason = previous.cooldown_until, previous.cooldown_reason
    else:
        cooldown_until, cooldown_reason = None, None

    health, health_reason = _health(score=score, alerts=alerts, banned=banned, thresholds=thresholds)
    reset_because = regress_because = None
    if banned:
        reset_because = "permanently banned"
    elif started is not None and started.reason is CooldownReason.TEMPORARY_BAN:
        reset_because = "temporary ban: the warm-up starts over"
    elif started is not None and started.reason is not CooldownReason.CONNECTION_INSTABILITY:
        # A flaky connection is more often the provider's or the network's trouble than WhatsApp's judgement:
        # it cools the number but keeps its phase.
        regress_because = f"{started.reason.value} cooldown: {started.cause}"
    cooling = cooldown_until is not None and cooldown_until > now
    phase = decide_phase(
        phase=previous.phase,
        phase_since=previous.phase_since,
        regressed_at=previous.regressed_at,
        now=now,
        instance_age=instance_age,
        week=windows.week,
        score=score,
        clean=health is HealthStatus.HEALTHY and not alerts and not cooling,
        regress_because=regress_because,
        reset_because=reset_because,
        policy=thresholds.warmup,
    )
    state = _next_state(
        previous,
        now=now,
        score=score,
        health=health,
        phase=phase,
        cooldown_until=cooldown_until,
        cooldown_reason=cooldown_reason,
        history=history,
        alerts=alerts,
        banned_at=previous.banned_at,
    )
    explanation = Explanation(
        evaluation_version=EVALUATION_VERSION,
        evaluated_at=now,
        trigger="windows",
        instance_age=instance_age,
        windows=windows,
        thresholds=thresholds,
        previous_score=previous.score,
        terms=bounded_terms,
        score=score,
        alert_checks=checks,
        health=health,
        health_reason=health_reason,
        phase=phase,
        cooldown=started,
        cooldown_note=note,
    )
    return Evaluation(previous=previous, state=state, explanation=explanation, cooldown_started=started)


# -------------------------------------------------------------------------------- restriction_cooldown


def restriction_cooldown(
    previous: ReputationState,
    kind: RestrictionKind,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    *,
    now: datetime,
    provider_until: datetime | None = None,
) -> Evaluation:
    """Cool the number at once for a restriction the provider reported (a 463 from a send or an ERROR ack,
    a temporary or permanent ban), without waiting for the windows.

    A 463 cools for the first step of the time-lock ladder, each repeat within the escalation memory for
    the next, longer step; `provider_until` (the provider's own end, when known) is never cut short.
    Reports that arrive while the cooldown they would start is still in force are the same episode (the
    asynchronous 463s of one burst, or one 463 reported by both the Executor and the webhook): they never
    escalate, and only extend it to a later `provider_until`. A temporary ban sends the warm-up back to
    NEWBORN; a permanent ban makes the number UNHEALTHY for good. LOGGED_OUT, DISCONNECTED and
    UNAUTHORIZED change nothing here: the registry's connection state already keeps such a number out.
    """
    _require_aware(now)
    history = _recent(previous.cooldown_history, now, thresholds.escalation_memory)
    terms: list[ScoreTerm] = [ScoreTerm(name="previous score", contribution=previous.score)]
    banned_at = previous.banned_at
    alerts = previous.alerts
    started: CooldownDecision | None = None
    cooldown_until, cooldown_reason = (
        (previous.cooldown_until, previous.cooldown_reason) if previous.cooling_down(now) else (None, None)
    )
    reset_because = regress_because = None

    if kind is RestrictionKind.PERMANENT_BAN:
        banned_at = banned_at or now
        terms.append(
            ScoreTerm(name="permanent ban", contribution=-previous.score, detail="a banned number scores 0")
        )
        alerts = _sorted_alerts({*alerts, ReputationAlert.RESTRICTED})
        cooldown_until, cooldown_reason = None, None
        reset_because = "permanently banned"
        note = "permanently banned: no cooldown, the number is not chosen"
    elif kind in _RESTRICTION_REASON and banned_at is None:
        reason = _RESTRICTION_REASON[kind]
        alerts = _sorted_alerts({*alerts, ReputationAlert.RESTRICTED})
        ongoing = _ongoing(history, reason, now)
        if ongoing is not None:
            if provider_until is not None and provider_until > ongoing.until:
                history = tuple(
                    replace(record, until=provider_until) if record is ongoing else record
                    for record in history
                )
                note = f"{kind.value} again during its cooldown; the provider's end is later"
                if cooldown_until is None or provider_until > cooldown_until:
                    started = CooldownDecision(
                        reason=reason,
                        started_at=now,
                        until=provider_until,
                        step=max(0, _escalation_step(history, reason) - 1),
                        restriction=kind,
                        alerts=(ReputationAlert.RESTRICTED,),
                        cause=note,
                        extended=True,
                    )
                else:
                    note += f"; the {cooldown_reason} cooldown in force lasts longer"
            else:
                note = f"{kind.value} again during its cooldown: the same episode"
        else:
            proposal = _propose(
                reason=reason,
                history=history,
                now=now,
                thresholds=thresholds,
                restriction=kind,
                alerts=(ReputationAlert.RESTRICTED,),
                provider_until=provider_until,
                cause=f"{kind.value} reported by the provider",
            )
            history = (*history, CooldownRecord(reason=reason, started_at=now, until=proposal.until))
            # What the windows will count for it once the signal is in them.
            if reason is CooldownReason.REACHOUT_TIMELOCK:
                penalty = _TIMELOCK_POINTS_DAY + _TIMELOCK_POINTS_WEEK
            else:
                penalty = _BAN_POINTS_WEEK
            terms.append(ScoreTerm(name="restrictions", contribution=-penalty, detail=proposal.cause))
            if reason is CooldownReason.TEMPORARY_BAN:
                reset_because = "temporary ban: the warm-up starts over"
            else:
                regress_because = f"{reason.value} cooldown: {proposal.cause}"
            if cooldown_until is None or proposal.until > cooldown_until:
                started = proposal
                note = proposal.cause
            else:
                note = f"{proposal.cause}; the {cooldown_reason} cooldown in force lasts longer"
    elif banned_at is not None:
        note = "permanently banned: no cooldown, the number is not chosen"
    else:
        note = f"{kind.value}: no reputation effect (the connection state keeps the number out)"

    if started is not None:
        cooldown_until, cooldown_reason = started.until, started.reason
    bounded_terms, score = _bounded(terms)
    health, health_reason = _health(
        score=score, alerts=alerts, banned=banned_at is not None, thresholds=thresholds
    )
    if regress_because is None and reset_because is None:
        # Advancing, or losing a phase to a low score, is for the windows to decide (evaluate).
        phase = PhaseDecision(
            previous=previous.phase,
            phase=previous.phase,
            change=PhaseChange.HELD,
            reason="no new restriction",
        )
    else:
        phase = decide_phase(
            phase=previous.phase,
            phase_since=previous.phase_since,
            regressed_at=previous.regressed_at,
            now=now,
            instance_age=timedelta(0),
            week=WindowStats.empty(Window.WEEK),
            score=score,
            clean=False,
            regress_because=regress_because,
            reset_because=reset_because,
            policy=thresholds.warmup,
        )
    state = _next_state(
        previous,
        now=now,
        score=score,
        health=health,
        phase=phase,
        cooldown_until=cooldown_until,
        cooldown_reason=cooldown_reason,
        history=history,
        alerts=alerts,
        banned_at=banned_at,
    )
    explanation = Explanation(
        evaluation_version=EVALUATION_VERSION,
        evaluated_at=now,
        trigger=f"restriction:{kind.value}",
        instance_age=None,
        windows=None,
        thresholds=thresholds,
        previous_score=previous.score,
        terms=bounded_terms,
        score=score,
        alert_checks=(),
        health=health,
        health_reason=health_reason,
        phase=phase,
        cooldown=started,
        cooldown_note=note,
    )
    return Evaluation(previous=previous, state=state, explanation=explanation, cooldown_started=started)


# ----------------------------------------------------------------------------------------- internals


def _next_state(
    previous: ReputationState,
    *,
    now: datetime,
    score: int,
    health: HealthStatus,
    phase: PhaseDecision,
    cooldown_until: datetime | None,
    cooldown_reason: CooldownReason | None,
    history: tuple[CooldownRecord, ...],
    alerts: tuple[ReputationAlert, ...],
    banned_at: datetime | None,
) -> ReputationState:
    moved = phase.phase is not previous.phase
    return ReputationState(
        score=score,
        health=health,
        phase=phase.phase,
        phase_since=now if moved else previous.phase_since,
        regressed_at=now if moved and phase.change is not PhaseChange.ADVANCED else previous.regressed_at,
        cooldown_until=cooldown_until,
        cooldown_reason=cooldown_reason,
        cooldown_history=history,
        alerts=alerts,
        banned_at=banned_at,
        evaluated_at=now,
        version=previous.version + 1,
        evaluation_version=EVALUATION_VERSION,
    )


def _sorted_alerts(alerts: set[ReputationAlert]) -> tuple[ReputationAlert, ...]:
    return tuple(sorted(alerts, key=_ALERT_ORDER.__getitem__))


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise InvariantViolated("now must be timezone-aware")


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else "-"


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(_plain(key)): _plain(item) for key, item in value.items()}
    return value
