"""Signals: the observable facts providers and the Executor report about an instance, and their counters.

A signal is one fact, recorded once however often and in whatever order it is reported: its **fact key**
names the fact, not the report. Facts about one of the instance's own messages are keyed by the message
(WhatsApp's id of it, the same in the Executor's send answer and the provider's webhooks); facts about the
instance (connection changes, bans) by when the provider says they happened and why; a session-level
reach-out time-lock by the time it ends, so a webhook and a probe reporting the same lock are one fact.

Counters: every new signal adds one to its kind's counter in a minute bucket and an hour bucket of its
instance (at the fact's time), in the transaction that records it. A window is read from at most a few
hundred buckets, whatever the size of the log. Ack latency (sent -> delivered) goes into a fixed
log-scale histogram per bucket; p50 and p95 are read from the summed histograms. Soft failures (sends
with no ack after a timeout) are read from the buckets too: each bucket also counts its sends that were
answered (delivered, read or failed), and a bucket old enough that its sends have all timed out
contributes `sent - answered`. See docs/adr/0044-reputation-signals.md.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from functools import cache, lru_cache
from typing import Any

from libs.seedwork.errors import InvariantViolated, duration_text


class SignalKind(StrEnum):
    MESSAGE_SENT = "MESSAGE_SENT"  # the Executor's MessageSent only: the provider accepted our send
    DELIVERED = "DELIVERED"  # the recipient's device acked one of our messages
    READ = "READ"  # read or played
    REPLIED = "REPLIED"  # an incoming message quoting one of ours
    RECEIVED = "RECEIVED"  # any other incoming message
    FAILED = "FAILED"  # one of our sends failed, at send time or reported after it
    CONNECTION_CONNECTED = "CONNECTION_CONNECTED"
    CONNECTION_DISCONNECTED = "CONNECTION_DISCONNECTED"
    CONNECTION_ERROR = "CONNECTION_ERROR"
    REACHOUT_TIMELOCKED = "REACHOUT_TIMELOCKED"  # WhatsApp's 463: no new conversations for a while
    BANNED = "BANNED"  # temporary or permanent


class SignalSource(StrEnum):
    """Who reported it: the provider's webhook (through the gateway), the Executor's health probe, or the
    Executor's outcome of a send."""

    WEBHOOK = "WEBHOOK"
    PROBE = "PROBE"
    EXECUTOR = "EXECUTOR"


# Facts about one outgoing message whose correlation (latency, soft failures) the signal log tracks.
TRACKED_KINDS = frozenset({SignalKind.MESSAGE_SENT, SignalKind.DELIVERED, SignalKind.READ, SignalKind.FAILED})
MAX_MESSAGE_KEY = 128


def message_key(provider_message_id: str) -> str:
    """WhatsApp's own id of a message inside a provider's id of it, so that the Executor's send answer and
    the webhooks about the same message meet. WAHA serializes ids as `<fromMe>_<chat>_<id>[_<participant>]`
    and the chat may be spelled differently in the answer and the webhook (`@c.us`, `@lid`); the others
    (Evolution's `key.id`, wuzapi, TurboZap) give the id as is."""
    parts = provider_message_id.split("_")
    key = parts[2] if len(parts) >= 3 and parts[0] in ("true", "false") else provider_message_id
    if len(key) > MAX_MESSAGE_KEY:  # bounded column; a longer id is still one id
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def fact_key(kind: SignalKind, instance_id: str, identity: str) -> str:
    """`identity` is what makes it this fact: "msg:<message key>", "job:<job id>:<attempts>" (a failed send
    with no message), "at:<time>:<reason>" (a change of the instance, when the provider dated it), else
    "event:<event id>", "until:<time>" (a session's time-lock)."""
    return f"{kind.value}:{instance_id}:{identity}"


@dataclass(frozen=True, kw_only=True)
class Signal:
    """One observable fact about one instance. `occurred_at`: when it happened (as reported, never later
    than when it was recorded). `ack_latency_ms`: DELIVERED only, once its send is known too."""

    fact_key: str
    kind: SignalKind
    instance_id: str
    organization_id: str
    occurred_at: datetime
    source: SignalSource
    provider_message_id: str = ""
    message_key: str = ""  # facts about one of the instance's own messages
    is_group: bool | None = None  # None: the report did not say
    ack_latency_ms: int | None = None


# --- message correlation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Correlation:
    """What learning one fact about a message adds to the counters besides the fact itself: an answered
    send (in the bucket of its send time) and an ack latency (in the bucket of its delivery)."""

    answered_send_at: datetime | None = None
    latency_ms: int | None = None
    delivered_at: datetime | None = None


@dataclass(kw_only=True, eq=False)
class TrackedMessage:
    """One outgoing message as the signal log knows it: whichever of its facts arrived, in any order.

    A send is *answered* once it is delivered, read or failed; the latency is sent -> delivered, known as
    soon as both are, whichever came first (a provider clock behind ours reads as 0, never negative)."""

    instance_id: str
    message_key: str
    first_seen_at: datetime
    job_id: str = ""
    attempts: int = 0
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    answered: bool = False
    latency_ms: int | None = None

    def sent(self, at: datetime, *, job_id: str, attempts: int) -> Correlation:
        if self.sent_at is not None:
            return Correlation()
        self.sent_at, self.job_id, self.attempts = at, job_id, attempts
        return self._with_latency(at if self.answered else None)

    def delivered(self, at: datetime) -> Correlation:
        if self.delivered_at is not None:
            return Correlation()
        self.delivered_at = at
        return self._with_latency(self._answer())

    def read_or_failed(self) -> Correlation:
        return Correlation(answered_send_at=self._answer())

    def _answer(self) -> datetime | None:
        """The send's time when this is its first answer and the send is known, for its bucket."""
        if self.answered:
            return None
        self.answered = True
        return self.sent_at

    def _with_latency(self, answered_send_at: datetime | None) -> Correlation:
        """The latency once both ends are known, the first time only."""
        if self.sent_at is None or self.delivered_at is None or self.latency_ms is not None:
            return Correlation(answered_send_at=answered_send_at)
        self.latency_ms = max(0, round((self.delivered_at - self.sent_at).total_seconds() * 1000))
        return Correlation(
            answered_send_at=answered_send_at, latency_ms=self.latency_ms, delivered_at=self.delivered_at
        )


# --- buckets --------------------------------------------------------------------------------------------


class Granularity(IntEnum):
    """Bucket lengths in seconds: minutes for the edges of a window, hours for its middle."""

    MINUTE = 60
    HOUR = 3600


def bucket_start(at: datetime, granularity: Granularity) -> datetime:
    seconds = int(at.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(seconds - seconds % granularity, UTC)


# Ack latency histogram: bin 0 is [0, 250 ms), bin i is [250·√2^(i-1), 250·√2^i) ms, and the last bin is
# open (from about 2.3 h on). Fixed bins, so a bucket's histogram is a fixed set of counters and windows add
# them up; a quantile read from them is within a bin's width (√2) of the true one, interpolated inside it.
LATENCY_BINS = 32
LATENCY_BASE_MS = 250.0


def latency_bin(latency_ms: float) -> int:
    if latency_ms < LATENCY_BASE_MS:
        return 0
    # Half-octaves: 2·log2 is exact on the bounds themselves (1000 ms is the start of a bin, not its end).
    return min(LATENCY_BINS - 1, 1 + int(2 * math.log2(latency_ms / LATENCY_BASE_MS) + 1e-9))


def latency_bin_bounds(index: int) -> tuple[float, float | None]:
    """[low, high) of a bin in ms; high is None for the last, open bin."""
    low = 0.0 if index == 0 else LATENCY_BASE_MS * 2 ** ((index - 1) / 2)
    high = None if index == LATENCY_BINS - 1 else LATENCY_BASE_MS * 2 ** (index / 2)
    return low, high


def latency_quantile(histogram: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) of the latencies counted in `histogram`; None when it is empty. Linear
    inside the bin that holds it; the open last bin answers its lower bound."""
    total = sum(histogram)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            low, high = latency_bin_bounds(index)
            if high is None:
                return low
            return low + (high - low) * max(0.0, rank - seen) / count
        seen += count
    return latency_bin_bounds(LATENCY_BINS - 1)[0]


_KIND_COUNTER = {
    SignalKind.MESSAGE_SENT: "sent",
    SignalKind.DELIVERED: "delivered",
    SignalKind.READ: "read",
    SignalKind.REPLIED: "replied",
    SignalKind.RECEIVED: "received",
    SignalKind.FAILED: "failed",
    SignalKind.CONNECTION_CONNECTED: "connects",
    SignalKind.CONNECTION_DISCONNECTED: "disconnects",
    SignalKind.CONNECTION_ERROR: "connection_errors",
    SignalKind.REACHOUT_TIMELOCKED: "timelocks",
    SignalKind.BANNED: "bans",
}


def _zero_bins() -> tuple[int, ...]:
    return (0,) * LATENCY_BINS


@dataclass(frozen=True, kw_only=True)
class Counts:
    """The counters of one bucket, or of several added up. `answered`: sends of this bucket (by send time)
    answered since; `latency_*`: acks of this bucket (by delivery time) whose latency is known."""

    sent: int = 0
    delivered: int = 0
    read: int = 0
    replied: int = 0
    received: int = 0
    failed: int = 0
    connects: int = 0
    disconnects: int = 0
    connection_errors: int = 0
    timelocks: int = 0
    bans: int = 0
    answered: int = 0
    latency_count: int = 0
    latency_sum_ms: int = 0
    latency_bins: tuple[int, ...] = field(default_factory=_zero_bins)

    def __post_init__(self) -> None:
        if len(self.latency_bins) != LATENCY_BINS:
            raise InvariantViolated(f"a latency histogram has {LATENCY_BINS} bins")

    def __add__(self, other: Counts) -> Counts:
        values: dict[str, Any] = {name: getattr(self, name) + getattr(other, name) for name in COUNTER_NAMES}
        values["latency_bins"] = tuple(
            a + b for a, b in zip(self.latency_bins, other.latency_bins, strict=True)
        )
        return Counts(**values)

    @classmethod
    def of_kind(cls, kind: SignalKind) -> Counts:
        return _of_kind(kind)

    @classmethod
    def of_latency(cls, latency_ms: int) -> Counts:
        bins = [0] * LATENCY_BINS
        bins[latency_bin(latency_ms)] = 1
        return cls(latency_count=1, latency_sum_ms=latency_ms, latency_bins=tuple(bins))


@cache
def _of_kind(kind: SignalKind) -> Counts:
    # One per kind: a Counts is frozen, and one is asked for every signal recorded.
    values: dict[str, Any] = {_KIND_COUNTER[kind]: 1}
    return Counts(**values)


COUNTER_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Counts) if f.name != "latency_bins")


@dataclass(frozen=True)
class BucketKey:
    instance_id: str
    granularity: Granularity
    start: datetime


class CounterDeltas:
    """What a batch of signals adds to the buckets, summed per bucket so each is written once."""

    def __init__(self) -> None:
        # Summed in place, one flat list of counters then bins per bucket: a batch adds thousands of
        # signals, and a new frozen Counts per addition was a tenth of the ingest's time. Keyed by
        # (instance, granularity, start in epoch seconds) until read: cheaper to make and hash per signal.
        self._deltas: dict[tuple[str, int, int], list[int]] = {}

    def add(self, instance_id: str, at: datetime, counts: Counts) -> None:
        values, added = _flat(counts)
        seconds = int(at.astimezone(UTC).timestamp())
        for granularity in _GRANULARITIES:
            key = (instance_id, granularity, seconds - seconds % granularity)
            sums = self._deltas.get(key)
            if sums is None:
                self._deltas[key] = list(values)
                continue
            for index, value in added:
                sums[index] += value

    def items(self) -> Iterator[tuple[BucketKey, Counts]]:
        named = len(COUNTER_NAMES)
        for key, sums in self.sums():
            counters = dict(zip(COUNTER_NAMES, sums[:named], strict=True))
            yield key, Counts(**counters, latency_bins=tuple(sums[named:]))

    def sums(self) -> Iterator[tuple[BucketKey, tuple[int, ...]]]:
        """Each bucket's counters (COUNTER_NAMES) then its latency bins, in the one order every writer
        uses."""
        # One order for every writer (instance, granularity, start): two transactions upserting the same
        # buckets never deadlock.
        for (instance_id, granularity, start), sums in sorted(self._deltas.items()):
            key = BucketKey(instance_id, Granularity(granularity), datetime.fromtimestamp(start, UTC))
            yield key, tuple(sums)

    def __bool__(self) -> bool:
        return bool(self._deltas)


_GRANULARITIES = tuple(int(granularity) for granularity in Granularity)


def _flat(counts: Counts) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """The counters then the bins of `counts`, and the (index, value) of those not zero. Most additions are
    one of a few Counts (a signal of its kind, an answered send): those are flattened once; a latency
    (its own sum each time) every time."""
    return _flatten(counts) if counts.latency_count else _flatten_common(counts)


def _flatten(counts: Counts) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    values = (*(getattr(counts, name) for name in COUNTER_NAMES), *counts.latency_bins)
    return values, tuple((index, value) for index, value in enumerate(values) if value)


_flatten_common = lru_cache(maxsize=256)(_flatten)


# --- windows --------------------------------------------------------------------------------------------

DEFAULT_WINDOW = timedelta(hours=1)
MAX_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class BucketRange:
    granularity: Granularity
    start: datetime  # inclusive
    end: datetime  # exclusive


@dataclass(frozen=True)
class WindowPlan:
    """Which buckets make up a window ending now: hour buckets for its whole hours, minute buckets for its
    edges. `timed_out_before`: a bucket ending at or before this instant holds only sends older than the
    ack timeout."""

    start: datetime
    end: datetime
    ranges: tuple[BucketRange, ...]
    timed_out_before: datetime


def _floor(at: datetime, granularity: Granularity) -> datetime:
    return bucket_start(at, granularity)


def _ceil(at: datetime, granularity: Granularity) -> datetime:
    floor = _floor(at, granularity)
    return floor if floor == at else floor + timedelta(seconds=granularity)


def plan_window(
    now: datetime, length: timedelta, *, minute_horizon: timedelta, ack_timeout: timedelta
) -> WindowPlan:
    """The window [now - length, now] to the minute while minute buckets still cover its start
    (`minute_horizon`), else from the start of its first hour. Minute buckets also cover the last
    `ack_timeout` (and up to an hour before it), so every hour bucket read has timed out entirely."""
    if not timedelta(0) < length <= MAX_WINDOW:
        raise InvariantViolated(f"a window lasts more than 0 and at most {duration_text(MAX_WINDOW)}")
    if minute_horizon < ack_timeout + timedelta(hours=1):
        raise InvariantViolated("minute buckets must outlive the ack timeout by an hour")
    minute = timedelta(seconds=Granularity.MINUTE)
    end = _floor(now, Granularity.MINUTE) + minute  # the bucket of `now` included
    if length <= minute_horizon:
        start = _floor(now - length, Granularity.MINUTE)
        first_hour = _ceil(start, Granularity.HOUR)
    else:
        start = first_hour = _floor(now - length, Granularity.HOUR)
    recent = max(_floor(now - ack_timeout, Granularity.HOUR), first_hour)
    ranges = [
        BucketRange(Granularity.MINUTE, start, min(first_hour, end)),
        BucketRange(Granularity.HOUR, first_hour, recent),
        BucketRange(Granularity.MINUTE, max(recent, start), end),
    ]
    return WindowPlan(
        start=start,
        end=now,
        ranges=tuple(r for r in ranges if r.start < r.end),
        timed_out_before=now - ack_timeout,
    )


@dataclass(frozen=True, kw_only=True)
class BucketTotals:
    """A window's buckets added up, plus `unanswered_timed_out`: sends in buckets old enough to have timed
    out, minus those answered."""

    counts: Counts
    unanswered_timed_out: int


def _ratio(numerator: int, denominator: int) -> float:
    # An ack can fall into the window while its send fell before it: cap at 1.
    return 0.0 if denominator <= 0 else min(1.0, numerator / denominator)


@dataclass(frozen=True, kw_only=True)
class WindowCounts:
    """One instance's signals over one window ending now: the fields of the contract's WindowStats, plus
    time-locks, bans and the ack latency's p50/p95 (None: no ack with a known latency in the window).

    `avg_send_latency_ms` / `p95_send_latency_ms` are the same sent -> delivered latency (0 when none), as
    the contract's WindowStats carries it."""

    instance_id: str
    window_start: datetime
    window_end: datetime
    sent: int
    delivered: int
    read: int
    replied: int
    received: int
    failed: int
    ack_timeouts: int
    disconnects: int
    connection_errors: int
    delivery_rate: float
    read_rate: float
    reply_rate: float
    avg_send_latency_ms: float
    p95_send_latency_ms: float
    timelocks: int
    bans: int
    ack_latency_p50_ms: float | None
    ack_latency_p95_ms: float | None

    @classmethod
    def of(cls, instance_id: str, plan: WindowPlan, totals: BucketTotals) -> WindowCounts:
        c = totals.counts
        p50 = latency_quantile(c.latency_bins, 0.5)
        p95 = latency_quantile(c.latency_bins, 0.95)
        return cls(
            instance_id=instance_id,
            window_start=plan.start,
            window_end=plan.end,
            sent=c.sent,
            delivered=c.delivered,
            read=c.read,
            replied=c.replied,
            received=c.received,
            failed=c.failed,
            ack_timeouts=max(0, totals.unanswered_timed_out),
            disconnects=c.disconnects,
            connection_errors=c.connection_errors,
            delivery_rate=_ratio(c.delivered, c.sent),
            read_rate=_ratio(c.read, c.delivered),
            reply_rate=_ratio(c.replied, c.delivered),
            avg_send_latency_ms=c.latency_sum_ms / c.latency_count if c.latency_count else 0.0,
            p95_send_latency_ms=p95 or 0.0,
            timelocks=c.timelocks,
            bans=c.bans,
            ack_latency_p50_ms=p50,
            ack_latency_p95_ms=p95,
        )


def add_up(buckets: Iterable[Counts]) -> Counts:
    total = Counts()
    for counts in buckets:
        total = total + counts
    return total
