"""Rate windows in Redis: one Lua script reads a decision's snapshot, another checks every window and takes
the slot atomically (Redis runs a script with nothing interleaved). Calls of concurrent decisions travel in
one script call (see `Coalescer`), so a busy Gate makes one round trip per batch, not per decision.

Keys (under the configured prefix): i:<instance>:{m,h,d}:<window> counters, i:<instance>:last,
c:<org>:<target>:last and :h:<hour>, o:<org>:{d,M}:<window>, s:<org>:<target> (sticky instance), and
`windows`, the marker that the windows are whole. Keys are built inside the scripts, so this needs one
Redis primary, not a cluster (ADR 0010).

A Redis that comes back empty (restart without persistence, failover to a stale replica, a flush) has no
marker: the reserve script then takes nothing and answers "lost", and the store rebuilds the windows from
the Gate's approved intents (`SentHistory`) before it reserves again (ADR 0013).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, TryAgainError

from gate_service.application.ports import SentHistory
from gate_service.domain.decision import DecisionReason
from gate_service.domain.rates import (
    InstanceUsage,
    RateSnapshot,
    Reservation,
    ReservationResult,
    SentWindows,
    next_day,
    next_hour,
    next_minute,
    next_month,
    window_keys,
)
from gate_service.infrastructure.batching import Coalescer

log = logging.getLogger(__name__)

STICKY_TTL_SECONDS = 30 * 24 * 3600
# Expiries of the counters (a window and a bit), as the reserve script gives them.
MINUTE_TTL, HOUR_TTL, DAY_TTL, MONTH_TTL, LAST_TTL = 120, 7200, 172800, 2764800, 86400
MARKER = "windows"
LOST = "L"
# Rebuilds one reservation waits for before it gives up (each a Redis that lost everything again).
RESTORE_ATTEMPTS = 3
# Reservations taken after waiting for a rebuild, with the rebuild's time (the marker's value): their own
# time is older, which alone would read as "taken before the rebuild, not counted" and leak the slot when
# given back. Bounded: one never given back (the usual case: it was sent) is forgotten in turn.
TAKEN_AFTER_REBUILD_REMEMBERED = 10_000

# Every script takes the calls of a whole batch as one JSON argument (ARGV[1], a list of argument lists)
# and answers one element per call: packing one argument instead of twenty per call is most of what a
# decision costs in the Redis client. The calls run in order inside one script, so each is still atomic
# with respect to the others and to every other client.
_BATCH = """
local out = {}
for k, a in ipairs(cjson.decode(ARGV[1])) do out[k] = one(a) end
return out
"""

# One string back per call ("sticky|contact_last|contact_hour|org_day|org_month|id,m,h,d,last;id,...")
# rather than an array: one reply element is much cheaper to parse in Python than fifty.
SNAPSHOT = (
    """
local function one(a)
  local p, org, target = a[1], a[2], a[3]
  local m, h, d, mo = a[4], a[5], a[6], a[7]
  local c = p .. 'c:' .. org .. ':' .. target
  local sticky = redis.call('GET', p .. 's:' .. org .. ':' .. target)
  local head = {sticky or '', redis.call('GET', c .. ':last') or '',
                redis.call('GET', c .. ':h:' .. h) or '0',
                redis.call('GET', p .. 'o:' .. org .. ':d:' .. d) or '0',
                redis.call('GET', p .. 'o:' .. org .. ':M:' .. mo) or '0'}
  local ids = {}
  local seen = {}
  for i = 8, #a do ids[#ids + 1] = a[i]; seen[a[i]] = true end
  if sticky and not seen[sticky] then ids[#ids + 1] = sticky end
  local rows = {}
  for _, id in ipairs(ids) do
    local k = p .. 'i:' .. id
    local v = redis.call('MGET', k .. ':m:' .. m, k .. ':h:' .. h, k .. ':d:' .. d, k .. ':last')
    rows[#rows + 1] = table.concat({id, v[1] or '0', v[2] or '0', v[3] or '0', v[4] or ''}, ',')
  end
  return table.concat(head, '|') .. '|' .. table.concat(rows, ';')
end
"""
    + _BATCH
)

# A slot taken before the windows were rebuilt (a[9], its time, before the marker's) is not in them: it was
# not committed, so the intents did not count it. Giving it back would free a slot that is taken.
RELEASE = (
    """
local rebuilt = tonumber(redis.call('GET', ARGV[2]) or '') or math.huge
local function one(a)
  local p, org, target, inst = a[1], a[2], a[3], a[4]
  local m, h, d, mo = a[5], a[6], a[7], a[8]
  if tonumber(a[9]) < rebuilt then return '0' end
  local o, c, i = p .. 'o:' .. org, p .. 'c:' .. org .. ':' .. target, p .. 'i:' .. inst
  for _, key in ipairs({o .. ':d:' .. d, o .. ':M:' .. mo, c .. ':h:' .. h, i .. ':d:' .. d, i .. ':h:' .. h,
                        i .. ':m:' .. m}) do
    if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
  end
  return '0'
end
"""
    + _BATCH
)

# The reserve script's batch: nothing is taken from windows that are not whole (no marker, ARGV[2]).
_GUARDED_BATCH = """
local calls = cjson.decode(ARGV[1])
local out = {}
if redis.call('EXISTS', ARGV[2]) == 0 then
  for k = 1, #calls do out[k] = 'L' end
  return out
end
for k, a in ipairs(calls) do out[k] = one(a) end
return out
"""

# Answers '0' when taken, 'L' when the windows were lost, else 'code,time_ms': 1 plan day, 2 plan month,
# 3 contact gap, 4 contact hour, 5 instance min interval, 6 day, 7 hour, 8 minute.
RESERVE = (
    """
local function one(a)
  local p, org, target, inst = a[1], a[2], a[3], a[4]
  local now = tonumber(a[5])
  local m, h, d, mo = a[6], a[7], a[8], a[9]
  local cap_m, cap_h, cap_d = tonumber(a[10]), tonumber(a[11]), tonumber(a[12])
  local interval, gap = tonumber(a[13]), tonumber(a[14])
  local contact_cap, plan_d, plan_mo = tonumber(a[15]), tonumber(a[16]), tonumber(a[17])
  local sticky_ttl = tonumber(a[18])
  local o, c, i = p .. 'o:' .. org, p .. 'c:' .. org .. ':' .. target, p .. 'i:' .. inst
  local function n(key) return tonumber(redis.call('GET', key) or '0') end
  if plan_d > 0 and n(o .. ':d:' .. d) >= plan_d then return '1,0' end
  if plan_mo > 0 and n(o .. ':M:' .. mo) >= plan_mo then return '2,0' end
  local last_c = redis.call('GET', c .. ':last')
  if last_c and gap > 0 and now < tonumber(last_c) + gap then return '3,' .. (tonumber(last_c) + gap) end
  if contact_cap > 0 and n(c .. ':h:' .. h) >= contact_cap then return '4,0' end
  local last_i = redis.call('GET', i .. ':last')
  if last_i and interval > 0 and now < tonumber(last_i) + interval then
    return '5,' .. (tonumber(last_i) + interval)
  end
  if cap_d > 0 and n(i .. ':d:' .. d) >= cap_d then return '6,0' end
  if cap_h > 0 and n(i .. ':h:' .. h) >= cap_h then return '7,0' end
  if cap_m > 0 and n(i .. ':m:' .. m) >= cap_m then return '8,0' end
  -- A counter gets its expiry when it is created (the script is atomic: never one without the other).
  local function bump(key, ttl) if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ttl) end end
  bump(o .. ':d:' .. d, 172800)
  bump(o .. ':M:' .. mo, 2764800)
  bump(c .. ':h:' .. h, 7200)
  bump(i .. ':d:' .. d, 172800)
  bump(i .. ':h:' .. h, 7200)
  bump(i .. ':m:' .. m, 120)
  local keep = math.max(86400, math.ceil(math.max(interval, gap) / 1000) + 60)
  redis.call('SET', c .. ':last', now, 'EX', keep)
  redis.call('SET', i .. ':last', now, 'EX', keep)
  redis.call('SET', p .. 's:' .. org .. ':' .. target, inst, 'EX', sticky_ttl)
  return '0'
end
"""
    + _GUARDED_BATCH
)


# Writes part of the rebuilt windows ([key, value, ttl] each), and with the last part the marker (ARGV[2] =
# ARGV[3]), unless the marker is there: another process rebuilt first, and reservations may have counted
# since. Parts keep Redis free for others between them; nothing reserves until the marker is set.
REBUILD = """
if redis.call('EXISTS', ARGV[2]) == 1 then return 0 end
for _, e in ipairs(cjson.decode(ARGV[1])) do redis.call('SET', e[1], e[2], 'EX', e[3]) end
if ARGV[3] ~= '' then redis.call('SET', ARGV[2], ARGV[3]) end
return 1
"""
REBUILD_PART = 10_000  # keys a rebuild writes per script call: ~40 ms of Redis

_SCRIPTS = {"snapshot": SNAPSHOT, "reserve": RESERVE, "release": RELEASE, "rebuild": REBUILD}
_REFUSALS = {
    1: (DecisionReason.PLAN_LIMIT, next_day),
    2: (DecisionReason.PLAN_LIMIT, next_month),
    3: (DecisionReason.CONTACT_MIN_INTERVAL, None),
    4: (DecisionReason.CONTACT_RATE_LIMIT, next_hour),
    5: (DecisionReason.MIN_INTERVAL, None),
    6: (DecisionReason.RATE_LIMIT, next_day),
    7: (DecisionReason.RATE_LIMIT, next_hour),
    8: (DecisionReason.RATE_LIMIT, next_minute),
}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(raw: str) -> datetime | None:
    return datetime.fromtimestamp(int(raw) / 1000, UTC) if raw else None


class RateWindowsLost(TryAgainError):
    """The windows were lost again after every rebuild this reservation waited for: answered as a Redis
    outage (UNAVAILABLE, libs.stores), so the client retries."""


class RedisRateStore:
    """RateStore in Redis. `history` is what lost windows are rebuilt from (None: they start empty);
    `settle` is how long a rebuild waits first, so that reservations taken before the loss are committed
    and counted (a reservation is committed milliseconds after it is taken)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        history: SentHistory | None = None,
        settle: timedelta = timedelta(0),
        concurrency: int = 1,
        max_batch: int = 256,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._marker = prefix + MARKER
        self._history = history
        self._settle = settle.total_seconds()
        self._restoring: asyncio.Future[None] | None = None
        self._taken_after_rebuild: dict[Reservation, str] = {}  # insertion-ordered: oldest first
        self._last_rebuild: str | None = None  # the marker's value after the last restore this process saw
        self._shas: dict[str, str] = {}
        self._snapshots: Coalescer[list[str], bytes] = Coalescer(
            lambda calls: self._run("snapshot", calls),
            stage="redis_snapshot",
            concurrency=concurrency,
            max_batch=max_batch,
        )
        self._reserves: Coalescer[list[str], bytes] = Coalescer(
            lambda calls: self._run("reserve", calls),
            stage="redis_reserve",
            concurrency=concurrency,
            max_batch=max_batch,
        )

    async def load_scripts(self) -> None:
        for name, source in _SCRIPTS.items():
            self._shas[name] = await self._redis.script_load(source)

    async def _run(self, script: str, calls: list[list[str]], *args: str) -> list[bytes]:
        """One EVALSHA for the whole batch; loads the scripts again if Redis lost them (restart, flush)."""
        return await self._eval(script, orjson.dumps(calls), self._marker, *args)

    async def _eval(self, script: str, *args: bytes | str) -> list[bytes]:
        if not self._shas:
            await self.load_scripts()
        try:
            return await self._redis.evalsha(self._shas[script], 0, *args)
        except NoScriptError:
            await self.load_scripts()
            return await self._redis.evalsha(self._shas[script], 0, *args)

    async def restore(self) -> None:
        """Rebuild the windows if they were lost. Concurrent callers share one rebuild; processes race,
        and the first to write wins (the script writes nothing once the marker is there)."""
        if self._restoring is None or self._restoring.done():
            self._restoring = asyncio.ensure_future(self._rebuild())
        await asyncio.shield(self._restoring)

    async def _rebuild(self) -> None:
        if not await self._redis.exists(self._marker):  # else rebuilt meanwhile, by this process or another
            await self._write_windows()
        # Read once for every call that waited: which rebuild their slots follow.
        marker = await self._redis.get(self._marker)
        self._last_rebuild = marker.decode() if isinstance(marker, bytes) else marker

    async def _write_windows(self) -> None:
        if self._settle:
            await asyncio.sleep(self._settle)
        started = time.perf_counter()
        windows = await self._history.current_windows() if self._history else None
        entries = self._entries(windows) if windows else []
        at = windows.at if windows else None
        for start in range(0, len(entries), REBUILD_PART):
            part = entries[start : start + REBUILD_PART]
            if not await self._eval("rebuild", orjson.dumps(part), self._marker, ""):
                return  # another process rebuilt first
        written = await self._eval("rebuild", b"[]", self._marker, str(_ms(at) if at else 0))
        if written and windows and (windows.instances or windows.plans):
            log.warning(
                "rate windows were lost; rebuilt from approved intents",
                extra={
                    "instances": len(windows.instances),
                    "contacts": len(windows.contacts),
                    "organizations": len(windows.plans),
                    "seconds": round(time.perf_counter() - started, 3),
                },
            )

    def _entries(self, w: SentWindows) -> list[tuple[str, str, int]]:
        """The windows as [key, value, ttl], keyed exactly as the reserve script keys them."""
        p = self._prefix
        m, h, d, month = window_keys(w.at)
        out: list[tuple[str, str, int]] = []

        def count(key: str, value: int, ttl: int) -> None:
            if value > 0:
                out.append((key, str(value), ttl))

        for instance_id, usage in w.instances.items():
            i = f"{p}i:{instance_id}"
            count(f"{i}:m:{m}", usage.minute, MINUTE_TTL)
            count(f"{i}:h:{h}", usage.hour, HOUR_TTL)
            count(f"{i}:d:{d}", usage.day, DAY_TTL)
            if usage.last_sent_at:
                out.append((f"{i}:last", str(_ms(usage.last_sent_at)), LAST_TTL))
        for (org, target), contact in w.contacts.items():
            c = f"{p}c:{org}:{target}"
            count(f"{c}:h:{h}", contact.hour, HOUR_TTL)
            if contact.last_sent_at:
                out.append((f"{c}:last", str(_ms(contact.last_sent_at)), LAST_TTL))
            if contact.last_instance_id:
                out.append((f"{p}s:{org}:{target}", contact.last_instance_id, STICKY_TTL_SECONDS))
        for org, plan in w.plans.items():
            count(f"{p}o:{org}:d:{d}", plan.day, DAY_TTL)
            count(f"{p}o:{org}:M:{month}", plan.month, MONTH_TTL)
        return out

    async def snapshot(
        self, organization_id: str, target: str, instance_ids: list[str], now: datetime
    ) -> RateSnapshot:
        m, h, d, month = window_keys(now)
        raw = await self._snapshots.submit(
            [self._prefix, organization_id, target, m, h, d, month, *instance_ids]
        )
        text = raw.decode() if isinstance(raw, bytes) else raw
        sticky, contact_last, contact_hour, org_day, org_month, rows = text.split("|", 5)
        usage = {}
        for row in rows.split(";") if rows else ():
            instance_id, minute, hour, day, last = row.split(",")
            usage[instance_id] = InstanceUsage(
                minute=int(minute), hour=int(hour), day=int(day), last_sent_at=_from_ms(last)
            )
        return RateSnapshot(
            sticky_instance_id=sticky or None,
            contact_last_sent_at=_from_ms(contact_last),
            contact_hour=int(contact_hour),
            org_day=int(org_day),
            org_month=int(org_month),
            instances=usage,
        )

    async def reserve(self, r: Reservation) -> ReservationResult:
        now = r.now
        m, h, d, month = window_keys(now)
        ms = timedelta(milliseconds=1)
        args = [
            self._prefix,
            r.organization_id,
            r.target,
            r.instance_id,
            str(_ms(now)),
            m,
            h,
            d,
            month,
            str(r.caps.per_minute),
            str(r.caps.per_hour),
            str(r.caps.per_day),
            str(int(r.caps.min_interval / ms)),
            str(int(r.contact_min_gap / ms)),
            str(r.contact_per_hour),
            str(r.plan_daily_cap),
            str(r.plan_monthly_cap),
            str(STICKY_TTL_SECONDS),
        ]
        raw = await self._reserves.submit(args)
        text = raw.decode() if isinstance(raw, bytes) else raw
        if text == "0":
            return ReservationResult(True)
        if text == LOST:
            return await self._reserve_restored(r, args)
        return _refusal(text, now)

    async def _reserve_restored(self, r: Reservation, args: list[str]) -> ReservationResult:
        """The windows were lost: rebuild them (once for every call that found them lost), then reserve."""
        for _ in range(RESTORE_ATTEMPTS):
            await self.restore()
            raw = await self._reserves.submit(args)
            text = raw.decode() if isinstance(raw, bytes) else raw
            if text == "0":
                self._remember_taken_after_rebuild(r)
                return ReservationResult(True)
            if text != LOST:
                return _refusal(text, r.now)
        raise RateWindowsLost("the rate windows were lost again after every rebuild")

    def _remember_taken_after_rebuild(self, r: Reservation) -> None:
        if self._last_rebuild is None:
            return  # lost again while rebuilding: nothing to give back to
        self._taken_after_rebuild[r] = self._last_rebuild
        if len(self._taken_after_rebuild) > TAKEN_AFTER_REBUILD_REMEMBERED:
            del self._taken_after_rebuild[next(iter(self._taken_after_rebuild))]

    async def release(self, r: Reservation) -> None:
        m, h, d, month = window_keys(r.now)
        # Taken after a rebuild: frees its slot unless the windows were rebuilt again since.
        taken_at = self._taken_after_rebuild.pop(r, None) or str(_ms(r.now))
        await self._run(
            "release", [[self._prefix, r.organization_id, r.target, r.instance_id, m, h, d, month, taken_at]]
        )


def _refusal(text: str, now: datetime) -> ReservationResult:
    code, at = map(int, text.split(","))
    reason, window_end = _REFUSALS[code]
    retry_at = window_end(now) if window_end else datetime.fromtimestamp(at / 1000, UTC)
    return ReservationResult(False, reason, retry_at)
