"""The warm-up planner's rules: how many conversations a warming number has on a given day, with whom, at
what times and saying what. Pure and deterministic: the same instance, day, phase, partners and schedule
always give the same plan, so a plan made again after a restart is the plan made before it.

    conversations(day n) = min(phase cap, round(first_day x growth^(n - 1)))   (4, 6, 8, 11, 15, 22, ...)

A conversation is an OPENER from the warming number to a partner and, when the partner is one of the
organization's own numbers, a REPLY from the partner back: two-way traffic is what WhatsApp reads as human
(and what the phase criteria measure as replies). Friendly numbers are people who answer by hand, so only
the opener is planned for them.

Each planned message becomes one `SubmitIntent` with purpose WARMUP when its time comes, pinned to its
sender (`instance_id`): the Gate decides only that number, and queues or refuses the message rather than
send it from another; the planner never sends by itself. Its idempotency key is derived from the
instance, the day and its place in the plan, so a message submitted twice (a crash between the Gate's
answer and our write) is one intent at the Gate.

    PLANNED --due--> SUBMITTED --> SENT
       |                 +-------> FAILED (the Gate refused it, or the send failed)
       +--> FAILED (refused at submission)
       +--> SKIPPED (its time passed while the planner was not running: a burst of late messages is the
                     machine-like pattern warm-up exists to avoid)
"""

from __future__ import annotations

import hashlib
import random
import zoneinfo
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache

from libs.seedwork.errors import Violations
from libs.seedwork.phone import normalize_phone
from reputation_service.domain.warmup import WarmupPhase

MAX_FRIENDLY_NUMBERS = 50
KEY_PREFIX = "warmup"

# Short, everyday Portuguese (the users are Brazilian): what two people who know each other write.
OPENERS: tuple[str, ...] = (
    "Oi, tudo bem?",
    "Oi! Como você está?",
    "Tudo certo por aí?",
    "E aí, novidades?",
    "Oi! Conseguiu ver aquilo que te falei?",
    "Olá, passando pra dar um oi",
    "Tudo tranquilo hoje?",
    "Oi, como foi o fim de semana?",
    "Já almoçou hoje?",
    "Oi! Vamos combinar aquele café essa semana?",
    "Oi, me avisa quando puder falar",
    "E aí, como vão as coisas no trabalho?",
)
REPLIES: tuple[str, ...] = (
    "Tudo ótimo, e você?",
    "Oi! Tudo bem sim, obrigado",
    "Por aqui tudo certo!",
    "Vi sim, depois te falo com calma",
    "Opa, tudo tranquilo",
    "Bora sim, me fala o dia",
    "Tudo bem! Correria de sempre",
    "Oi, pode falar",
    "Foi ótimo, obrigado por perguntar",
    "Já sim, e você?",
    "Beleza, combinado",
    "Haha, sempre!",
)


class MessageRole(StrEnum):
    OPENER = "OPENER"  # the warming number writes to its partner
    REPLY = "REPLY"  # the partner answers the warming number


class MessageStatus(StrEnum):
    """Values match whatlead.reputation.v1.WarmupMessageStatus without its prefix."""

    PLANNED = "PLANNED"
    SUBMITTED = "SUBMITTED"  # the Gate took it (approved or queued)
    SENT = "SENT"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


FINAL_STATUSES = frozenset({MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.SKIPPED})


@dataclass(frozen=True, kw_only=True)
class WarmupSchedule:
    """An organization's warm-up settings: its sending hours in its own time zone, and the friendly numbers
    (people outside the organization who agreed to chat with its new numbers)."""

    start: time = time(8, 0)
    end: time = time(20, 0)
    time_zone: str = "America/Sao_Paulo"
    friendly_numbers: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, *, start: time, end: time, time_zone: str, friendly_numbers: tuple[str, ...] | list[str]
    ) -> WarmupSchedule:
        """Checked and normalized: phones to E.164 digits, without duplicates, in the order given."""
        violations = Violations()
        violations.check(start < end, "sending_hours", "must start before it ends (within one day)")
        violations.check(
            is_time_zone(time_zone), "time_zone", "must be an IANA time zone, e.g. America/Sao_Paulo"
        )
        violations.check(
            len(friendly_numbers) <= MAX_FRIENDLY_NUMBERS,
            "friendly_numbers",
            f"must be at most {MAX_FRIENDLY_NUMBERS}",
        )
        phones: list[str] = []
        for index, raw in enumerate(friendly_numbers):
            phone = normalize_phone(raw)
            if phone is None:
                violations.add(f"friendly_numbers[{index}]", "must be an E.164 number, 8 to 15 digits")
            elif phone not in phones:
                phones.append(phone)
        violations.raise_if_any()
        return cls(start=start, end=end, time_zone=time_zone, friendly_numbers=tuple(phones))

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    def local_day(self, moment: datetime) -> date:
        """The organization's calendar date at `moment`: plans are made per local day."""
        return moment.astimezone(self.zone).date()

    def window(self, day: date) -> tuple[datetime, datetime]:
        """The sending hours of a local day, in UTC."""
        zone = self.zone
        start = datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)
        end = datetime.combine(day, self.end, tzinfo=zone).astimezone(UTC)
        return start, end


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_time_zone(name: str) -> bool:
    # Membership, not ZoneInfo(name): a name is never turned into a path on the server's disk.
    return name in _zones()


@dataclass(frozen=True, kw_only=True)
class PhaseRamp:
    """How a warming number's daily conversations grow: ~x1.4 a day like SendGrid's warm-up schedule
    (hourly caps 20, 28, 39, 55, 77 ...), from a few conversations on day 1, each phase capped well under the
    Gate's daily send cap for it (NEWBORN 30, WARMING 150) so ordinary traffic keeps room."""

    first_day: int = 4
    growth: float = 1.4
    caps: dict[WarmupPhase, int] = field(
        default_factory=lambda: {WarmupPhase.NEWBORN: 10, WarmupPhase.WARMING: 30}
    )
    # Human-like gaps: at least this between two conversations of one number, and a reply comes this
    # long after its opener.
    min_gap: timedelta = timedelta(minutes=5)
    reply_after: tuple[timedelta, timedelta] = (timedelta(seconds=40), timedelta(minutes=6))

    def conversations(self, phase: WarmupPhase, day_number: int) -> int:
        """Conversations planned on the `day_number`-th day (1: the day the number was registered)."""
        cap = self.caps.get(phase, 0)
        if cap <= 0 or day_number < 1:
            return 0
        return min(cap, round(self.first_day * self.growth ** (day_number - 1)))


@dataclass(frozen=True, kw_only=True)
class Partner:
    """Who a warming number talks to: one of its organization's own numbers, or a friendly number."""

    phone: str
    instance_id: str = ""  # "" for a friendly number

    @property
    def friendly(self) -> bool:
        return not self.instance_id


@dataclass(frozen=True, kw_only=True)
class PlannedMessage:
    idempotency_key: str
    organization_id: str
    instance_id: str  # the warming number this plan is for
    day: date
    conversation: int  # 0-based, in time order
    role: MessageRole
    due_at: datetime
    sender_instance_id: str  # the number that sends it: the intent is pinned to it at the Gate
    partner: Partner
    target_phone: str
    text: str
    status: MessageStatus = MessageStatus.PLANNED
    intent_id: str = ""
    gate_instance_id: str = ""  # the instance the Gate approved it for
    reason: str = ""  # why FAILED or SKIPPED
    submitted_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class WarmupPlan:
    organization_id: str
    instance_id: str
    day: date
    day_number: int
    phase: WarmupPhase
    window_start: datetime
    window_end: datetime
    time_zone: str
    messages: tuple[PlannedMessage, ...]
    note: str = ""  # why fewer conversations than the ramp asks (no partner, a window too short)
    created_at: datetime | None = None

    @property
    def conversations(self) -> int:
        return len({m.conversation for m in self.messages})

    def progress(self) -> dict[MessageStatus, int]:
        counts = dict.fromkeys(MessageStatus, 0)
        for message in self.messages:
            counts[message.status] += 1
        return counts


def idempotency_key(instance_id: str, day: date, conversation: int, role: MessageRole) -> str:
    """Stable per planned message: 'warmup:<instance>:<yyyy-mm-dd>:<n>:<o|r>' (at most 64 characters)."""
    return f"{KEY_PREFIX}:{instance_id}:{day.isoformat()}:{conversation}:{role.value[0].lower()}"


def day_number(registered_at: datetime, day: date, schedule: WarmupSchedule) -> int:
    """1 on the local day the number was registered, 2 the next, ..."""
    return (day - schedule.local_day(registered_at)).days + 1


def _rng(instance_id: str, day: date) -> random.Random:
    # Seeded from the instance and the day: deterministic, and different numbers don't move in lockstep.
    seed = hashlib.sha256(f"{instance_id}|{day.isoformat()}".encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def plan_day(
    *,
    organization_id: str,
    instance_id: str,
    instance_phone: str,
    registered_at: datetime,
    day: date,
    phase: WarmupPhase,
    partners: list[Partner],
    schedule: WarmupSchedule,
    ramp: PhaseRamp,
) -> WarmupPlan:
    """The plan of one number for one local day. Partners that are the number itself (same id or phone) are
    left out; the rest take turns in a shuffled order so each is used about as often as the others."""
    number = day_number(registered_at, day, schedule)
    window_start, window_end = schedule.window(day)
    wanted = ramp.conversations(phase, number)
    pool = sorted(
        {p.phone: p for p in partners if p.phone != instance_phone and p.instance_id != instance_id}.values(),
        key=lambda p: (p.instance_id == "", p.instance_id, p.phone),
    )
    note = ""
    if wanted and not pool:
        note = "no partner: the organization has no other connected warm-up number and no friendly number"
        wanted = 0
    rng = _rng(instance_id, day)
    # Openers leave room for the longest reply before the window closes.
    span = (window_end - window_start - ramp.reply_after[1]).total_seconds()
    gap = ramp.min_gap.total_seconds()
    fits = int(span // gap) + 1 if span >= 0 else 0
    if wanted > fits:
        note = f"the sending hours fit {fits} of the {wanted} conversations the ramp asks for"
        wanted = fits
    # n sorted uniform points in [0, span - (n-1)*gap], then the i-th pushed i gaps later: random, uneven,
    # never closer than the minimum gap and never outside the window.
    free = span - (wanted - 1) * gap if wanted else 0.0
    offsets = sorted(rng.uniform(0, free) for _ in range(wanted))
    order = list(pool)
    rng.shuffle(order)
    messages: list[PlannedMessage] = []
    for index, offset in enumerate(offsets):
        at = window_start + timedelta(seconds=round(offset + index * gap))
        partner = order[index % len(order)]
        base = PlannedMessage(
            idempotency_key=idempotency_key(instance_id, day, index, MessageRole.OPENER),
            organization_id=organization_id,
            instance_id=instance_id,
            day=day,
            conversation=index,
            role=MessageRole.OPENER,
            due_at=at,
            sender_instance_id=instance_id,
            partner=partner,
            target_phone=partner.phone,
            text=rng.choice(OPENERS),
        )
        messages.append(base)
        if partner.friendly:
            continue
        low, high = (d.total_seconds() for d in ramp.reply_after)
        messages.append(
            replace(
                base,
                idempotency_key=idempotency_key(instance_id, day, index, MessageRole.REPLY),
                role=MessageRole.REPLY,
                due_at=at + timedelta(seconds=round(rng.uniform(low, high))),
                sender_instance_id=partner.instance_id,
                target_phone=instance_phone,
                text=rng.choice(REPLIES),
            )
        )
    return WarmupPlan(
        organization_id=organization_id,
        instance_id=instance_id,
        day=day,
        day_number=number,
        phase=phase,
        window_start=window_start,
        window_end=window_end,
        time_zone=schedule.time_zone,
        messages=tuple(messages),
        note=note,
    )


def conversation_status(messages: list[PlannedMessage]) -> MessageStatus:
    """One conversation's status: FAILED or SKIPPED if any of its messages is, else the least advanced."""
    statuses = {m.status for m in messages}
    for final in (MessageStatus.FAILED, MessageStatus.SKIPPED):
        if final in statuses:
            return final
    for status in (MessageStatus.PLANNED, MessageStatus.SUBMITTED):
        if status in statuses:
            return status
    return MessageStatus.SENT
