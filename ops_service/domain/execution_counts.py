"""Execution metrics as time-bucketed counters, so a window's numbers cost the buckets it spans, not the
events in it.

Each fact adds to counters keyed by (organization, instance, bucket, metric, label); instance is "" for
what belongs to no instance (submissions, refusals). Buckets are kept per minute and per hour: a window of
up to `MINUTE_WINDOW_LIMIT` is summed from minute buckets (exact to the minute), a longer one from hour
buckets (its start rounded down to the hour). Time to send (intent created -> provider accepted) is a
histogram over `TIME_TO_SEND_BOUNDS_MS`; its percentiles are interpolated inside a bin, so they are as
precise as the bins (e.g. a p95 between 2 s and 5 s is read from that bin alone).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ops_service.domain.timeline import (
    AttemptEnded,
    CooldownStarted,
    DeliveryChanged,
    IntentClosed,
    IntentDecided,
    IntentSubmitted,
    TimelineRecord,
)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
MINUTE_WINDOW_LIMIT = timedelta(hours=6)
# Upper bounds of the time-to-send bins, in ms; one more bin holds everything slower.
TIME_TO_SEND_BOUNDS_MS: tuple[int, ...] = (
    100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000, 21_600_000,
)  # fmt: skip
PRESSURE_SCALE = 1_000_000  # rate pressure (0..1) kept as parts per million in integer counters

SUBMITTED = "submitted"
APPROVED = "approved"
NOT_APPROVED = ("queued", "blocked", "dropped")
SENT = "sent"
FAILED = "failed"
RETRIES = "retries"
NEEDS_REVIEW = "needs_review"
DELIVERED = "delivered"
READ = "read"
COOLDOWNS = "cooldowns"
TIME_TO_SEND = "time_to_send"
PRESSURE = "rate_pressure"


@dataclass(frozen=True)
class CounterDelta:
    organization_id: str
    instance_id: str
    at: datetime
    metric: str
    label: str = ""
    count: int = 1
    total: int = 0  # a sum (milliseconds, parts per million) next to the count
    peak: int = 0  # the highest single value added


def time_bin(milliseconds: float) -> int:
    return bisect_left(TIME_TO_SEND_BOUNDS_MS, milliseconds)


def deltas(record: TimelineRecord, submitted_at: datetime | None = None) -> list[CounterDelta]:
    """What one fact adds to the counters. `submitted_at`: when its intent was created, for the Gate's
    IntentSent (time to send); None when not known (its IntentCreated was never seen)."""
    org = record.recorded.organization_id
    at = record.recorded.occurred_at
    fact = record.fact
    match fact:
        case IntentSubmitted():
            return [CounterDelta(org, "", at, SUBMITTED)]
        case IntentDecided() if fact.outcome == "APPROVED":
            found = [CounterDelta(org, fact.instance_id, at, APPROVED)]
            chosen = fact.chosen
            if chosen is not None:
                ppm = round(max(0.0, min(chosen.rate_pressure, 1.0)) * PRESSURE_SCALE)
                found.append(CounterDelta(org, fact.instance_id, at, PRESSURE, total=ppm, peak=ppm))
            return found
        case IntentDecided() if fact.outcome.lower() in NOT_APPROVED:
            return [CounterDelta(org, "", at, fact.outcome.lower(), fact.reason or "UNSPECIFIED")]
        case AttemptEnded():
            metric = {"SENT": SENT, "FAILED": FAILED, "RETRY": RETRIES, "NEEDS_REVIEW": NEEDS_REVIEW}
            label = fact.error_class if fact.outcome == "FAILED" else ""
            return [CounterDelta(org, fact.instance_id, at, metric[fact.outcome], label or "")]
        case IntentClosed() if fact.sent and submitted_at is not None and fact.at is not None:
            ms = max(0, round((fact.at - submitted_at).total_seconds() * 1000))
            return [
                CounterDelta(org, fact.instance_id, at, TIME_TO_SEND, str(time_bin(ms)), total=ms, peak=ms)
            ]
        case DeliveryChanged():
            metric_name = DELIVERED if fact.status == "DELIVERED" else READ
            return [CounterDelta(org, fact.instance_id, at, metric_name)]
        case CooldownStarted():
            return [CounterDelta(org, fact.instance_id, at, COOLDOWNS)]
    return []


def merged(
    found: Iterable[CounterDelta], resolution: timedelta
) -> dict[tuple[str, str, datetime, str, str], list[int]]:
    """Deltas summed per bucket of `resolution` (one row to upsert each): [count, total, peak]."""
    rows: dict[tuple[str, str, datetime, str, str], list[int]] = {}
    for delta in found:
        key = (
            delta.organization_id,
            delta.instance_id,
            bucket_start(delta.at, resolution),
            delta.metric,
            delta.label,
        )
        row = rows.setdefault(key, [0, 0, 0])
        row[0] += delta.count
        row[1] += delta.total
        row[2] = max(row[2], delta.peak)
    return rows


def bucket_start(moment: datetime, resolution: timedelta) -> datetime:
    if resolution == HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(second=0, microsecond=0)


def resolution_for(window: timedelta) -> timedelta:
    return MINUTE if window <= MINUTE_WINDOW_LIMIT else HOUR


# ---- reading: summed counter rows -> metrics ---------------------------------------------------------


@dataclass(frozen=True)
class CounterRow:
    """A counter summed over the window (or over one hour of it)."""

    instance_id: str
    metric: str
    label: str
    count: int
    total: int = 0
    peak: int = 0


@dataclass
class Counts:
    submitted: int = 0
    approved: int = 0
    queued: int = 0
    blocked: int = 0
    dropped: int = 0
    sent: int = 0
    failed: int = 0
    retries: int = 0
    needs_review: int = 0
    delivered: int = 0
    read: int = 0


@dataclass
class TimeToSend:
    bins: list[int] = field(default_factory=lambda: [0] * (len(TIME_TO_SEND_BOUNDS_MS) + 1))
    total_ms: int = 0

    @property
    def count(self) -> int:
        return sum(self.bins)

    @property
    def average_ms(self) -> float:
        return self.total_ms / self.count if self.count else 0.0

    def percentile_ms(self, quantile: float) -> float:
        """Interpolated inside the bin where the quantile falls; the open last bin reads as its lower
        bound (at least that slow)."""
        count = self.count
        if not count:
            return 0.0
        rank = quantile * count
        seen = 0
        for index, in_bin in enumerate(self.bins):
            if in_bin and seen + in_bin >= rank:
                lower = TIME_TO_SEND_BOUNDS_MS[index - 1] if index else 0
                if index == len(TIME_TO_SEND_BOUNDS_MS):
                    return float(lower)
                upper = TIME_TO_SEND_BOUNDS_MS[index]
                return lower + (upper - lower) * max(0.0, rank - seen) / in_bin
            seen += in_bin
        return float(TIME_TO_SEND_BOUNDS_MS[-1])


@dataclass
class InstanceFigures:
    instance_id: str
    counts: Counts = field(default_factory=Counts)
    time_to_send: TimeToSend = field(default_factory=TimeToSend)
    cooldowns: int = 0
    failures_by_class: dict[str, int] = field(default_factory=dict)
    pressure_samples: int = 0
    pressure_total_ppm: int = 0
    pressure_peak_ppm: int = 0
    share_of_sent: float = 0.0

    @property
    def avg_rate_pressure(self) -> float:
        if not self.pressure_samples:
            return 0.0
        return self.pressure_total_ppm / self.pressure_samples / PRESSURE_SCALE

    @property
    def peak_rate_pressure(self) -> float:
        return self.pressure_peak_ppm / PRESSURE_SCALE


@dataclass
class OrganizationFigures:
    counts: Counts = field(default_factory=Counts)
    time_to_send: TimeToSend = field(default_factory=TimeToSend)
    not_approved_by_reason: dict[str, int] = field(default_factory=dict)
    failures_by_class: dict[str, int] = field(default_factory=dict)
    instances: list[InstanceFigures] = field(default_factory=list)

    @property
    def delivered_ratio(self) -> float:
        return self.counts.delivered / self.counts.sent if self.counts.sent else 0.0

    @property
    def read_ratio(self) -> float:
        return self.counts.read / self.counts.sent if self.counts.sent else 0.0


_COUNTED = (SUBMITTED, APPROVED, *NOT_APPROVED, SENT, FAILED, RETRIES, NEEDS_REVIEW, DELIVERED, READ)


def _add(counts: Counts, figures_time: TimeToSend, row: CounterRow) -> None:
    if row.metric in _COUNTED:
        setattr(counts, row.metric, getattr(counts, row.metric) + row.count)
    elif row.metric == TIME_TO_SEND:
        figures_time.bins[min(int(row.label), len(TIME_TO_SEND_BOUNDS_MS))] += row.count
        figures_time.total_ms += row.total


def instance_figures(instance_id: str, rows: Sequence[CounterRow]) -> InstanceFigures:
    figures = InstanceFigures(instance_id)
    for row in rows:
        if row.instance_id != instance_id:
            continue
        _add(figures.counts, figures.time_to_send, row)
        if row.metric == COOLDOWNS:
            figures.cooldowns += row.count
        elif row.metric == FAILED:
            figures.failures_by_class[row.label] = figures.failures_by_class.get(row.label, 0) + row.count
        elif row.metric == PRESSURE:
            figures.pressure_samples += row.count
            figures.pressure_total_ppm += row.total
            figures.pressure_peak_ppm = max(figures.pressure_peak_ppm, row.peak)
    return figures


def organization_figures(rows: Sequence[CounterRow], max_instances: int) -> OrganizationFigures:
    """The organization's totals, and its instances by sends (highest first, at most `max_instances`)."""
    figures = OrganizationFigures()
    reasons: defaultdict[str, int] = defaultdict(int)
    failures: defaultdict[str, int] = defaultdict(int)
    for row in rows:
        _add(figures.counts, figures.time_to_send, row)
        if row.metric in NOT_APPROVED:
            reasons[row.label] += row.count
        elif row.metric == FAILED:
            failures[row.label] += row.count
    figures.not_approved_by_reason = dict(reasons)
    figures.failures_by_class = dict(failures)
    ids = sorted({row.instance_id for row in rows if row.instance_id})
    instances = [instance_figures(instance_id, rows) for instance_id in ids]
    for each in instances:
        each.share_of_sent = each.counts.sent / figures.counts.sent if figures.counts.sent else 0.0
    instances.sort(key=lambda each: (-each.counts.sent, each.instance_id))
    figures.instances = instances[:max_instances]
    return figures
