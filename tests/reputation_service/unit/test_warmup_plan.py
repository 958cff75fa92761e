"""The warm-up plan of one number for one day: the ramp, the phase caps, who it talks to, when, and the keys
its messages are submitted with. Pure: no clock, no I/O."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta

import pytest

from libs.seedwork.errors import InvalidArgument
from reputation_service.domain.warmup import WarmupPhase
from reputation_service.domain.warmup_plan import (
    OPENERS,
    REPLIES,
    MessageRole,
    Partner,
    PhaseRamp,
    WarmupPlan,
    WarmupSchedule,
    day_number,
    idempotency_key,
    plan_day,
)

ORG = "org-acme"
ME = "0193a000-0000-7000-8000-000000000001"
MY_PHONE = "5511900000001"
OTHERS = [
    Partner(phone="5511900000002", instance_id="0193a000-0000-7000-8000-000000000002"),
    Partner(phone="5511900000003", instance_id="0193a000-0000-7000-8000-000000000003"),
]
FRIEND = Partner(phone="5521988887777")
REGISTERED = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)  # 10:00 in São Paulo


def plan(
    *,
    day: date = date(2026, 12, 1),
    phase: WarmupPhase = WarmupPhase.NEWBORN,
    partners: list[Partner] | None = None,
    schedule: WarmupSchedule | None = None,
    ramp: PhaseRamp | None = None,
    instance_id: str = ME,
) -> WarmupPlan:
    return plan_day(
        organization_id=ORG,
        instance_id=instance_id,
        instance_phone=MY_PHONE,
        registered_at=REGISTERED,
        day=day,
        phase=phase,
        partners=OTHERS if partners is None else partners,
        schedule=schedule or WarmupSchedule(),
        ramp=ramp or PhaseRamp(),
    )


def test_conversations_grow_about_forty_percent_a_day_like_sendgrids_ramp() -> None:
    ramp = PhaseRamp(caps={WarmupPhase.NEWBORN: 1000})

    assert [ramp.conversations(WarmupPhase.NEWBORN, n) for n in range(1, 8)] == [4, 6, 8, 11, 15, 22, 30]


def test_each_phase_caps_the_ramp_and_numbers_past_warm_up_get_no_plan() -> None:
    ramp = PhaseRamp()

    assert ramp.conversations(WarmupPhase.NEWBORN, 30) == 10
    assert ramp.conversations(WarmupPhase.WARMING, 30) == 30
    assert ramp.conversations(WarmupPhase.WARMING, 2) == 6  # under its cap the ramp decides
    assert ramp.conversations(WarmupPhase.INTERACTING, 5) == 0
    assert ramp.conversations(WarmupPhase.STABLE, 5) == 0


def test_the_day_number_counts_local_days_from_registration() -> None:
    schedule = WarmupSchedule()

    assert day_number(REGISTERED, date(2026, 12, 1), schedule) == 1
    assert day_number(REGISTERED, date(2026, 12, 5), schedule) == 5
    # 01:00 UTC on Dec 2 is still Dec 1 in São Paulo: the same first day.
    assert day_number(datetime(2026, 12, 2, 1, 0, tzinfo=UTC), date(2026, 12, 1), schedule) == 1


def test_a_plan_has_the_ramps_conversations_with_a_reply_from_each_own_number() -> None:
    made = plan(day=date(2026, 12, 3))  # day 3: 8 conversations

    assert made.day_number == 3 and made.conversations == 8
    openers = [m for m in made.messages if m.role is MessageRole.OPENER]
    replies = [m for m in made.messages if m.role is MessageRole.REPLY]
    assert len(openers) == len(replies) == 8
    for opener in openers:
        assert opener.sender_instance_id == ME and opener.target_phone == opener.partner.phone
        assert opener.text in OPENERS
    for reply in replies:
        assert reply.sender_instance_id == reply.partner.instance_id and reply.target_phone == MY_PHONE
        assert reply.text in REPLIES


def test_a_number_is_never_paired_with_itself() -> None:
    itself = Partner(phone=MY_PHONE, instance_id=ME)
    same_phone = Partner(phone=MY_PHONE, instance_id="0193a000-0000-7000-8000-00000000000f")

    made = plan(day=date(2026, 12, 10), partners=[itself, same_phone, *OTHERS, FRIEND])

    assert made.messages
    for message in made.messages:
        assert message.partner.phone != MY_PHONE and message.partner.instance_id != ME
        if message.role is MessageRole.OPENER:
            assert message.target_phone != MY_PHONE
        else:
            assert message.sender_instance_id != ME


def test_with_only_itself_to_talk_to_a_number_gets_an_empty_plan_that_says_why() -> None:
    made = plan(partners=[Partner(phone=MY_PHONE, instance_id=ME)])

    assert made.messages == () and "no partner" in made.note


def test_partners_take_turns_and_a_friendly_number_gets_only_the_opener() -> None:
    made = plan(day=date(2026, 12, 10), phase=WarmupPhase.WARMING, partners=[*OTHERS, FRIEND])

    openers = [m for m in made.messages if m.role is MessageRole.OPENER]
    by_partner = {p.phone: sum(1 for m in openers if m.partner.phone == p.phone) for p in [*OTHERS, FRIEND]}
    assert max(by_partner.values()) - min(by_partner.values()) <= 1
    friendly = {m.conversation for m in openers if m.partner.friendly}
    assert friendly and not any(
        m.role is MessageRole.REPLY and m.conversation in friendly for m in made.messages
    )


def test_messages_keep_to_the_sending_hours_with_uneven_gaps_never_under_the_minimum() -> None:
    ramp = PhaseRamp()
    made = plan(day=date(2026, 12, 20), phase=WarmupPhase.WARMING)  # the WARMING cap: 30 conversations
    zone = WarmupSchedule().zone

    assert made.conversations == 30
    for message in made.messages:
        local = message.due_at.astimezone(zone)
        assert local.date() == date(2026, 12, 20) and time(8, 0) <= local.time() < time(20, 0)
    openers = sorted(m.due_at for m in made.messages if m.role is MessageRole.OPENER)
    gaps = [later - earlier for earlier, later in itertools.pairwise(openers)]
    assert min(gaps) >= ramp.min_gap
    assert len(set(gaps)) > len(gaps) // 2  # human-like: not a metronome
    for reply in (m for m in made.messages if m.role is MessageRole.REPLY):
        opener = next(
            m for m in made.messages if m.conversation == reply.conversation and m.role is MessageRole.OPENER
        )
        assert ramp.reply_after[0] <= reply.due_at - opener.due_at <= ramp.reply_after[1]


def test_the_window_follows_the_organizations_time_zone_across_the_utc_day_boundary() -> None:
    tokyo = WarmupSchedule.of(start=time(8, 0), end=time(20, 0), time_zone="Asia/Tokyo", friendly_numbers=[])

    start, end = tokyo.window(date(2026, 12, 5))

    # 08:00 in Tokyo is 23:00 UTC the day before.
    assert start == datetime(2026, 12, 4, 23, 0, tzinfo=UTC) and end == datetime(
        2026, 12, 5, 11, 0, tzinfo=UTC
    )
    made = plan(day=date(2026, 12, 5), schedule=tokyo)
    assert all(start <= m.due_at < end for m in made.messages)
    # 23:30 UTC on Dec 4 is already Dec 5 in Tokyo, still Dec 4 in São Paulo.
    moment = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)
    assert tokyo.local_day(moment) == date(2026, 12, 5)
    assert WarmupSchedule().local_day(moment) == date(2026, 12, 4)


def test_a_short_window_plans_what_fits_and_says_so() -> None:
    hour = WarmupSchedule.of(
        start=time(9, 0), end=time(10, 0), time_zone="America/Sao_Paulo", friendly_numbers=[]
    )

    made = plan(day=date(2026, 12, 20), phase=WarmupPhase.WARMING, schedule=hour)

    assert 0 < made.conversations < 30 and "fit" in made.note
    start, end = hour.window(date(2026, 12, 20))
    assert all(start <= m.due_at <= end for m in made.messages)


def test_idempotency_keys_name_the_instance_the_day_and_the_message_and_fit_the_gates_column() -> None:
    made = plan(day=date(2026, 12, 3))

    keys = [m.idempotency_key for m in made.messages]
    assert len(set(keys)) == len(keys)
    assert (
        keys[0]
        == idempotency_key(ME, date(2026, 12, 3), 0, MessageRole.OPENER)
        == f"warmup:{ME}:2026-12-03:0:o"
    )
    assert all(len(key) <= 128 for key in keys)
    assert not set(keys) & {m.idempotency_key for m in plan(day=date(2026, 12, 4)).messages}


def test_the_same_inputs_give_the_same_plan_so_a_restart_plans_nothing_new() -> None:
    first = plan(day=date(2026, 12, 6), partners=[*OTHERS, FRIEND])
    again = plan(day=date(2026, 12, 6), partners=[FRIEND, *reversed(OTHERS)])  # another listing order

    assert again == first
    assert plan(day=date(2026, 12, 7)).messages != first.messages
    other_number = plan(day=date(2026, 12, 6), instance_id="0193a000-0000-7000-8000-0000000000aa")
    assert [m.due_at for m in other_number.messages] != [m.due_at for m in first.messages]


def test_settings_are_checked_and_phones_normalized() -> None:
    settings = WarmupSchedule.of(
        start=time(9, 0),
        end=time(18, 0),
        time_zone="America/Manaus",
        friendly_numbers=["+55 21 98888-7777", "5521988887777"],
    )
    assert settings.friendly_numbers == ("5521988887777",)

    with pytest.raises(InvalidArgument) as refused:
        WarmupSchedule.of(
            start=time(20, 0), end=time(8, 0), time_zone="Mars/Olympus", friendly_numbers=["12"]
        )
    assert {v.field for v in refused.value.violations} == {
        "sending_hours",
        "time_zone",
        "friendly_numbers[0]",
    }
    with pytest.raises(InvalidArgument):
        WarmupSchedule.of(
            start=time(8, 0), end=time(20, 0), time_zone="../../etc/passwd", friendly_numbers=[]
        )


def test_defaults_are_eight_to_eight_in_sao_paulo() -> None:
    start, end = WarmupSchedule().window(date(2026, 12, 1))

    assert (start, end) == (
        datetime(2026, 12, 1, 11, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 23, 0, tzinfo=UTC),
    )
    assert end - start == timedelta(hours=12)
