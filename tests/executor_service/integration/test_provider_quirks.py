"""The real executor against the provider simulator playing WAHA's quirks, one per engine and release the
capability table tells apart (libs/providers/capabilities.py, docs/providers.md "Capability table"): a
send whose outcome is unknown is looked up only where the provider can prove it, and otherwise goes to a
person. Each test waits past the lease and a few reconciler passes, then reads the simulator's ledger:
no message ever goes out twice, and no job that cannot be proven absent is sent again."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from executor_service.bootstrap import Executor
from executor_service.infrastructure.tables import jobs
from libs.provider_simulator import ProviderSimulator, run_simulator
from libs.seedwork.ids import new_id
from libs.testing.jetstream import meta, publish, stored_events
from libs.testing.waiting import eventually
from tests.executor_service.integration.harness import (
    API_KEY,
    approved,
    instance_registered,
    job_row,
    last_error,
    own_streams,
    projected,
    running,
    settings,
)
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import executor_events_pb2, reputation_events_pb2

LEASE = 2.0
# Past the settle period (one lease) of an unknown outcome, its rescue, and another lease after it: any
# re-send the executor was going to make has been made by then.
QUIET = 2 * LEASE + 1.0

GOWS = common_pb2.PROVIDER_ENGINE_GOWS
NOWEB = common_pb2.PROVIDER_ENGINE_NOWEB
WEBJS = common_pb2.PROVIDER_ENGINE_WEBJS
KEEPS_IDS = "2026.4.3"  # NOWEB/GOWS keep our `id` and find it via chats/all from this release
BEFORE_IDS = "2026.3.1"
WEBJS_EMPTY_BODY = "2025.6.5"  # the WEBJS release that answered sends with an empty body


@pytest.fixture
async def simulator() -> AsyncIterator[ProviderSimulator]:
    async with run_simulator(api_key=API_KEY) as sim:
        yield sim


@pytest.fixture
async def root(jetstream, subject_root) -> AsyncIterator[str]:
    async with own_streams(jetstream, subject_root) as own:
        yield own


@pytest.fixture
async def executor(migrated_database, root, simulator) -> AsyncIterator[Executor]:
    """The executor with WAHA pointed at the simulator (the simulator speaks WAHA's API)."""
    config = settings(
        migrated_database("executor_service"),
        root,
        simulator.base_url,
        waha_url=simulator.base_url,
        waha_api_key=API_KEY,
        lease_seconds=LEASE,
        provider_timeout_seconds=1.5,
        probe_interval_seconds=0,  # no health probes: only the sends touch the simulator
    )
    async with running(config) as running_executor:
        yield running_executor


@dataclass(frozen=True)
class Waha:
    """One WAHA instance of a given release and engine, registered and projected."""

    organization: str
    instance: str
    session: str
    registered: reputation_events_pb2.InstanceRegistered


@contextlib.asynccontextmanager
async def waha_instance(
    js: Any, root: str, executor: Executor, *, version: str, engine: common_pb2.ProviderEngine.ValueType
) -> AsyncIterator[Waha]:
    organization, instance = f"org-{new_id()[-12:]}", new_id()
    session = f"q-{instance[-8:].lower()}"
    registered = instance_registered(
        organization,
        instance,
        session=session,
        provider=common_pb2.PROVIDER_WAHA,
        version=version,
        engine=engine,
    )
    await publish(js, root, registered)
    await projected(executor, instance)
    yield Waha(organization, instance, session, registered)


async def send(js: Any, root: str, waha: Waha, *, phone: str, text: str = "hi") -> str:
    """Approve one WAHA text to `phone` (one chat per intent: the ledger's entries per chat are its sends)."""
    intent = approved(
        waha.organization,
        session=waha.session,
        instance_id=waha.instance,
        phone=phone,
        text=text,
        provider=common_pb2.PROVIDER_WAHA,
    )
    await publish(js, root, intent)
    return intent.intent_id


async def settles_as(executor: Executor, intent_id: str, status: str, timeout: float = 20) -> Any:
    """Wait for the job's `status`, then past the lease and the reconciler: it must not have moved."""

    async def reached() -> bool:
        async with executor.infra.sessions() as session:
            found = await session.scalar(select(jobs.c.status).where(jobs.c.intent_id == intent_id))
        return found == status

    await eventually(reached, timeout=timeout)
    first = await job_row(executor, intent_id)
    await asyncio.sleep(QUIET)
    row = await job_row(executor, intent_id)
    assert (row.status, row.attempts) == (first.status, first.attempts), "the job moved after settling"
    return row


def sends_to(simulator: ProviderSimulator, phone: str) -> list[Any]:
    return [entry for entry in simulator.ledger.entries if entry.chat_id == f"{phone}@c.us"]


def no_duplicates(simulator: ProviderSimulator) -> None:
    """No client id and no chat (each intent has its own) got more than one send."""
    assert simulator.ledger.duplicates() == {}
    per_chat = Counter(entry.chat_id for entry in simulator.ledger.entries)
    assert [chat for chat, count in per_chat.items() if count > 1] == []


# --- our id ignored -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "version"),
    [(WEBJS, "2026.8.1"), (GOWS, BEFORE_IDS)],
    ids=["webjs", "gows-before-2026.4.3"],
)
async def test_an_ignored_client_id_and_an_answer_lost_after_the_send_go_to_review_never_out_again(
    jetstream, root, executor, simulator, engine, version
):
    async with waha_instance(jetstream, root, executor, version=version, engine=engine) as waha:
        simulator.configure_session(waha.session, ignore_client_id=True, error_after_send_next=1)
        intent = await send(jetstream, root, waha, phone="5511911110001")
        row = await settles_as(executor, intent, "NEEDS_REVIEW")

    # The table says this release ignores our id: none was sent, so a lookup could never prove absence.
    assert row.client_message_id is None
    assert last_error(row)["class"] == "AMBIGUOUS"
    [entry] = sends_to(simulator, "5511911110001")
    assert entry.client_id is None
    no_duplicates(simulator)


# --- @lid filing --------------------------------------------------------------------------------------


async def test_lid_filing_on_an_old_waha_with_a_lost_answer_goes_to_review(
    jetstream, root, executor, simulator
):
    async with waha_instance(jetstream, root, executor, version=BEFORE_IDS, engine=GOWS) as waha:
        simulator.configure_session(
            waha.session, ignore_client_id=True, lid_filing=True, error_after_send_next=1
        )
        intent = await send(jetstream, root, waha, phone="5511911110002")
        row = await settles_as(executor, intent, "NEEDS_REVIEW")

    assert row.provider_message_id is None
    [entry] = sends_to(simulator, "5511911110002")
    assert "@lid_" in entry.provider_id  # filed where a lookup by the @c.us chat never looks
    no_duplicates(simulator)


async def test_lid_filing_on_gows_2026_4_3_is_found_across_all_chats_and_sent_with_the_provider_s_id(
    jetstream, root, executor, simulator
):
    async with waha_instance(jetstream, root, executor, version=KEEPS_IDS, engine=GOWS) as waha:
        simulator.configure_session(waha.session, lid_filing=True, error_after_send_next=1)
        intent = await send(jetstream, root, waha, phone="5511911110003")
        row = await settles_as(executor, intent, "SENT")

    [entry] = sends_to(simulator, "5511911110003")
    assert entry.client_id == row.client_message_id is not None
    assert row.provider_message_id == entry.provider_id  # the @lid-filed id chats/all answered with
    assert row.attempts == 1 and row.lease_expirations == 1  # reconciled, not re-sent
    no_duplicates(simulator)


async def test_a_lookup_by_chat_that_answers_404_for_a_message_it_sent_proves_nothing(
    jetstream, root, executor, simulator
):
    """The job was created while the registry said 2026.4.3 (our id sent); before the lookup the registry
    corrects the release to an older one, whose lookup searches the @c.us chat: 404 for a message filed
    under @lid. A miss there proves nothing: review, not a second send."""
    async with waha_instance(jetstream, root, executor, version=KEEPS_IDS, engine=GOWS) as waha:
        simulator.configure_session(waha.session, lid_filing=True, error_after_send_next=1)
        intent = await send(jetstream, root, waha, phone="5511911110004")

        async def left() -> bool:
            return len(sends_to(simulator, "5511911110004")) == 1

        await eventually(left, timeout=15)
        corrected = reputation_events_pb2.InstanceChanged(meta=meta(waha.organization, waha.instance))
        corrected.instance.CopyFrom(waha.registered.instance)
        corrected.instance.version = 2
        corrected.instance.provider_version = BEFORE_IDS
        await publish(jetstream, root, corrected)
        await projected(executor, waha.instance, version=2, timeout=LEASE)  # before the settle period ends
        row = await settles_as(executor, intent, "NEEDS_REVIEW")

    assert row.client_message_id is not None  # the lookup had our id, and still could not prove absence
    error = last_error(row)
    assert error["code"] == "lookup_inconclusive"
    assert "not_found" in error["message"]
    assert len(sends_to(simulator, "5511911110004")) == 1
    no_duplicates(simulator)


# --- empty body ---------------------------------------------------------------------------------------


async def test_an_empty_body_on_webjs_goes_to_review(jetstream, root, executor, simulator):
    async with waha_instance(jetstream, root, executor, version=WEBJS_EMPTY_BODY, engine=WEBJS) as waha:
        simulator.configure_session(waha.session, ignore_client_id=True, empty_body_next=1)
        intent = await send(jetstream, root, waha, phone="5511911110005")
        row = await settles_as(executor, intent, "NEEDS_REVIEW")

    assert row.provider_message_id is None
    assert len(sends_to(simulator, "5511911110005")) == 1
    no_duplicates(simulator)


async def test_an_empty_body_on_gows_2026_4_3_is_looked_up_and_sent(jetstream, root, executor, simulator):
    async with waha_instance(jetstream, root, executor, version=KEEPS_IDS, engine=GOWS) as waha:
        simulator.configure_session(waha.session, empty_body_next=1)
        intent = await send(jetstream, root, waha, phone="5511911110006")
        row = await settles_as(executor, intent, "SENT")

    [entry] = sends_to(simulator, "5511911110006")
    assert row.provider_message_id == entry.provider_id
    assert entry.provider_id.endswith(f"_{row.client_message_id}")
    no_duplicates(simulator)


# --- NOWEB without its store --------------------------------------------------------------------------


async def test_noweb_without_its_store_cannot_prove_absence_and_goes_to_review(
    jetstream, root, executor, simulator
):
    async with waha_instance(jetstream, root, executor, version=KEEPS_IDS, engine=NOWEB) as waha:
        simulator.configure_session(waha.session, lookup_store_missing=True, error_after_send_next=1)
        intent = await send(jetstream, root, waha, phone="5511911110007")
        row = await settles_as(executor, intent, "NEEDS_REVIEW")

    error = last_error(row)
    assert error["code"] == "lookup_inconclusive"
    assert "store_disabled" in error["message"]
    [entry] = sends_to(simulator, "5511911110007")
    assert entry.client_id == row.client_message_id
    no_duplicates(simulator)


# --- provably absent ----------------------------------------------------------------------------------


async def test_a_500_before_the_send_left_is_proven_absent_on_gows_2026_4_3_and_sent_once(
    jetstream, root, executor, simulator
):
    async with waha_instance(jetstream, root, executor, version=KEEPS_IDS, engine=GOWS) as waha:
        simulator.configure_session(waha.session, error_before_send_next=1, fail_status=500)
        intent = await send(jetstream, root, waha, phone="5511911110008")
        row = await settles_as(executor, intent, "SENT")

    # The 500 was ambiguous; chats/all did not have our id, which proves it never left: sent again, once.
    assert row.attempts == 2 and row.lease_expirations == 1
    [entry] = sends_to(simulator, "5511911110008")
    assert entry.client_id == row.client_message_id is not None
    assert row.provider_message_id == entry.provider_id
    no_duplicates(simulator)


# --- wrapped 500 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "version"), [(WEBJS, "2026.8.1"), (GOWS, BEFORE_IDS)], ids=["webjs", "gows-before-2026.4.3"]
)
async def test_a_wrapped_500_without_a_lookup_that_proves_anything_goes_to_review_never_retried(
    jetstream, root, executor, simulator, engine, version
):
    async with waha_instance(jetstream, root, executor, version=version, engine=engine) as waha:
        simulator.configure_session(waha.session, ignore_client_id=True, wrapped_500_next=1)
        intent = await send(jetstream, root, waha, phone="5511911110009")
        row = await settles_as(executor, intent, "NEEDS_REVIEW")

    # A 500 that may hide a 463 or a send that left: nobody can tell, so nobody sends it again.
    assert row.attempts == 1
    assert last_error(row)["class"] == "AMBIGUOUS"
    assert len(simulator.ledger) == 0
    no_duplicates(simulator)


# --- sync 463 -----------------------------------------------------------------------------------------


async def test_a_sync_463_fails_the_job_restricted_and_holds_the_instance_s_next_job(
    jetstream, root, executor, simulator
):
    async with waha_instance(jetstream, root, executor, version=KEEPS_IDS, engine=GOWS) as waha:
        simulator.configure_session(waha.session, timelock_next=1)
        first = await send(jetstream, root, waha, phone="5511911110010")
        failed = await settles_as(executor, first, "FAILED")
        second = await send(jetstream, root, waha, phone="5511911110011")

        async def held() -> bool:
            async with executor.infra.sessions() as session:
                found = await session.scalar(select(jobs.c.held_by_pause).where(jobs.c.intent_id == second))
            return found is True

        await eventually(held, timeout=15)
        await asyncio.sleep(QUIET)
        still = await job_row(executor, second)
        events = await stored_events(jetstream, root, "executor")

    error = last_error(failed)
    assert (error["class"], error["restriction"]) == ("RESTRICTED", "REACHOUT_TIMELOCK")
    assert failed.attempts == 1
    assert (still.status, still.held_by_pause, still.attempts) == ("PENDING", True, 0)
    [message_failed] = [
        e for e in events if isinstance(e, executor_events_pb2.MessageFailed) and e.intent_id == first
    ]
    assert message_failed.error.restriction_kind == common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK
    assert len(simulator.ledger) == 0  # the 463 sent nothing; the held job was never offered
