"""The capability table, lookups that cannot lie, failures reported after the send, restriction holds and
health probes, end to end over fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from executor_service.application.execute_job import Outcome
from executor_service.application.instances import (
    FactKind,
    ProjectInstance,
    ProjectInstanceHandler,
    RecordInstanceFact,
    RecordInstanceFactHandler,
)
from executor_service.application.probe_health import ProbeInstances, ProbeInstancesHandler
from executor_service.application.record_provider_event import RecordSendFailure, RecordSendFailureHandler
from executor_service.application.retry_job import RetryJob, RetryJobHandler
from executor_service.domain.events import (
    MessageFailed,
    ProviderHealthReported,
)
from executor_service.domain.instance import InstanceHealth
from executor_service.domain.job import ExecutionStatus
from executor_service.domain.message import OutboundMessage
from executor_service.domain.outcome import ErrorClass, RestrictionKind
from libs.providers.capabilities import LookupMethod, LookupResult, ProviderProfile
from libs.providers.port import ProviderError, Restriction
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import ConnectionState, MessageType, Provider, ProviderEngine, TargetKind
from tests.executor_service.unit.builders import LEASE, ORG, T0
from tests.executor_service.unit.fakes import FakeHealthProber, capabilities
from tests.executor_service.unit.test_use_cases import POLICY, Executor

SETTLE = LEASE + timedelta(seconds=1)
NOWEB = ProviderProfile(Provider.WAHA, "2026.4.3", ProviderEngine.NOWEB)


async def register(ex: Executor, instance_id: str, *, version: int = 1, engine=ProviderEngine.NOWEB) -> None:
    async with ex.uow as uow:
        await ProjectInstanceHandler()(
            uow,
            ProjectInstance(
                instance_id=instance_id,
                organization_id=ORG,
                provider=Provider.WAHA,
                provider_instance_ref="sales-1",
                provider_version="2026.4.3",
                provider_engine=engine,
                version=version,
            ),
        )
        await uow.commit()


async def fact(ex: Executor, instance_id: str, kind: FactKind, **fields: object) -> bool:
    values: dict[str, object] = dict(
        instance_id=instance_id,
        organization_id=ORG,
        provider=Provider.WAHA,
        provider_instance_ref="sales-1",
        kind=kind,
        occurred_at=ex.clock.now(),
    )
    values.update(fields)
    async with ex.uow as uow:
        changed = await RecordInstanceFactHandler(ex.clock)(uow, RecordInstanceFact(**values))  # type: ignore[arg-type]
        await uow.commit()
    return changed


def image() -> OutboundMessage:
    return OutboundMessage(
        target_kind=TargetKind.PHONE,
        recipient="5511987654321",
        type=MessageType.MEDIA,
        media_url="https://cdn.example/a.png",
        mime_type="image/png",
    )


# --- 1. the profile of each instance decides the client id -------------------------------------------


async def test_the_client_id_follows_the_table_row_of_the_instances_profile():
    ex = Executor()
    ex.table.default = capabilities(client_id_types=frozenset())  # an unknown profile keeps no id
    ex.table.rows[NOWEB] = capabilities(client_id_types=frozenset({MessageType.TEXT, MessageType.MEDIA}))
    instance = new_id()
    await register(ex, instance)
    with_id = await ex.approve(instance_id=instance, message=image())
    unknown = await ex.approve(instance_id=new_id(), message=image())
    assert ex.job(with_id).client_message_id is not None  # media too, not texts only
    assert ex.job(unknown).client_message_id is None
    assert ProviderProfile(Provider.WAHA) in ex.table.asked  # missing from the projection: most cautious


async def test_a_type_the_provider_does_not_keep_gets_no_client_id():
    ex = Executor(capabilities=capabilities(client_id_types=frozenset({MessageType.TEXT})))
    job_id = await ex.approve(message=image())
    assert ex.job(job_id).client_message_id is None
    await ex.run_due()
    assert ex.provider.sent[0].client_message_id is None


async def test_an_older_registry_event_does_not_undo_a_newer_one():
    ex = Executor()
    instance = new_id()
    await register(ex, instance, version=3, engine=ProviderEngine.GOWS)
    await register(ex, instance, version=2, engine=ProviderEngine.WEBJS)
    assert ex.uow.instance(instance).provider_engine is ProviderEngine.GOWS


# --- 2. reconciliation that cannot lie ---------------------------------------------------------------


async def lost_answer(ex: Executor, **approve: object) -> str:
    """A job whose worker died after claiming it; its lease has expired."""
    job_id = await ex.approve(**approve)
    await ex.claim(10)
    ex.clock.advance(SETTLE)
    return job_id


async def test_found_settles_the_job_as_sent_and_searches_from_the_claim():
    ex = Executor()
    job_id = await ex.approve()
    ex.provider.fail_next(ProviderError.ambiguous("http_500"), accept=True)
    assert await ex.run_due() == [Outcome.AMBIGUOUS]
    ex.clock.advance(SETTLE)
    report = await ex.reconcile()
    assert report.found == 1 and ex.job(job_id).status is ExecutionStatus.SENT
    [asked] = ex.provider.lookups
    assert asked.sent_after == T0 and asked.client_message_id == ex.job(job_id).client_message_id
    assert len(ex.provider.sent) == 1


async def test_absent_sends_again_with_the_same_client_id():
    ex = Executor()
    job_id = await lost_answer(ex)
    client_id = ex.job(job_id).client_message_id
    report = await ex.reconcile()
    assert report.absent == 1 and ex.job(job_id).status is ExecutionStatus.RETRY
    ex.clock.advance(minutes=1)
    assert await ex.run_due() == [Outcome.SENT]
    assert [s.client_message_id for s in ex.provider.sent] == [client_id]


async def test_an_inconclusive_lookup_needs_review_never_a_resend():
    ex = Executor()
    job_id = await lost_answer(ex)
    ex.provider.look_up_next(LookupResult.inconclusive("lid_chat"))
    report = await ex.reconcile()
    assert report.inconclusive == 1 and report.needs_review == 1
    job = ex.job(job_id)
    assert job.status is ExecutionStatus.NEEDS_REVIEW
    assert job.last_error is not None and job.last_error.code == "lookup_inconclusive"
    assert "lid_chat" in job.last_error.message
    ex.clock.advance(hours=1)
    assert await ex.run_due() == [] and ex.provider.sent == []


async def test_a_miss_where_the_table_says_it_proves_nothing_needs_review():
    ex = Executor(capabilities=capabilities(miss_proves_absence=False))
    job_id = await lost_answer(ex)
    ex.provider.look_up_next(LookupResult.absent())  # an adapter that concluded too much
    report = await ex.reconcile()
    assert report.inconclusive == 1
    job = ex.job(job_id)
    assert job.status is ExecutionStatus.NEEDS_REVIEW and "miss_proves_nothing" in job.last_error.message


async def test_a_provider_without_a_lookup_is_not_asked():
    ex = Executor(capabilities=capabilities(lookup=LookupMethod.NONE, miss_proves_absence=False))
    job_id = await lost_answer(ex)
    report = await ex.reconcile()
    assert report.unsupported == 1 and report.needs_review == 1
    assert ex.job(job_id).status is ExecutionStatus.NEEDS_REVIEW
    assert ex.provider.lookups == []


@pytest.mark.parametrize("lookup", [LookupMethod.BY_ID, LookupMethod.BY_CHAT_AND_ID])
async def test_a_job_without_our_id_cannot_be_looked_up_by_id(lookup):
    ex = Executor(capabilities=capabilities(client_id_types=frozenset(), lookup=lookup))
    job_id = await lost_answer(ex)
    assert ex.job(job_id).client_message_id is None
    report = await ex.reconcile()
    assert report.unsupported == 1 and ex.job(job_id).status is ExecutionStatus.NEEDS_REVIEW
    assert ex.provider.lookups == []


async def test_a_lookup_by_chat_and_time_needs_no_client_id():
    ex = Executor(
        capabilities=capabilities(client_id_types=frozenset(), lookup=LookupMethod.BY_CHAT_AND_TIME)
    )
    job_id = await lost_answer(ex)
    ex.provider.look_up_next(LookupResult.found("BAE5F00D"))
    assert (await ex.reconcile()).found == 1
    job = ex.job(job_id)
    assert job.status is ExecutionStatus.SENT and job.provider_message_id == "BAE5F00D"
    assert ex.provider.lookups[0].client_message_id is None


async def test_a_lookup_failing_transiently_is_asked_again_later_then_settles():
    ex = Executor()
    job_id = await lost_answer(ex)
    ex.provider.look_up_next(ProviderError.transient("http_503", status=503))
    report = await ex.reconcile()
    assert report.unanswered == 1 and ex.job(job_id).status is ExecutionStatus.PROCESSING
    ex.clock.advance(SETTLE)
    ex.provider.look_up_next(LookupResult.found("pm-9"))
    assert (await ex.reconcile()).found == 1
    assert ex.job(job_id).status is ExecutionStatus.SENT
    assert len(ex.provider.lookups) == 2 and ex.provider.sent == []


async def test_an_ambiguous_send_is_reconciled_only_where_a_lookup_exists():
    ex = Executor(capabilities=capabilities(client_id_types=frozenset(), lookup=LookupMethod.BY_ID))
    job_id = await ex.approve()
    ex.provider.fail_next(ProviderError.ambiguous("http_500"))
    assert await ex.run_due() == [Outcome.NEEDS_REVIEW]  # a lookup by our id, and we have none
    assert ex.job(job_id).status is ExecutionStatus.NEEDS_REVIEW


# --- 3. a send reported failed after the 201 ---------------------------------------------------------


async def sent(ex: Executor, **approve: object) -> str:
    job_id = await ex.approve(**approve)
    assert await ex.run_due() == [Outcome.SENT]
    return job_id


async def report_failure(ex: Executor, job_id: str, *, code: str = "463", timelock: bool = True) -> bool:
    job = ex.job(job_id)
    async with ex.uow as uow:
        changed = await RecordSendFailureHandler(ex.clock)(
            uow,
            RecordSendFailure(
                provider_message_id=f"true_5511987654321@c.us_{job.client_message_id}",
                client_message_id=job.client_message_id,
                error_code=code,
                reachout_timelock=timelock,
                occurred_at=ex.clock.now(),
            ),
        )
        await uow.commit()
    return changed


async def test_an_async_463_fails_the_sent_job_restricted_and_time_locks_the_instance():
    ex = Executor()
    instance = new_id()
    job_id = await sent(ex, instance_id=instance)
    assert await report_failure(ex, job_id)
    job = ex.job(job_id)
    assert job.status is ExecutionStatus.FAILED
    assert job.last_error.error_class is ErrorClass.RESTRICTED and job.last_error.code == "reachout_timelock"
    [failed] = ex.uow.events_of(MessageFailed)
    assert isinstance(failed, MessageFailed)
    assert failed.error.restriction is RestrictionKind.REACHOUT_TIMELOCK  # Reputation cools it down
    assert ex.uow.instance(instance).timelocked
    assert not await report_failure(ex, job_id)  # a repeat changes nothing
    assert len(ex.uow.events_of(MessageFailed)) == 1
    ex.clock.advance(hours=2)
    assert await ex.run_due() == []  # never retried
    assert len(ex.provider.sent) == 1


async def test_another_code_fails_the_job_permanent_after_its_send():
    ex = Executor()
    job_id = await sent(ex)
    assert await report_failure(ex, job_id, code="479", timelock=False)
    job = ex.job(job_id)
    assert job.last_error.error_class is ErrorClass.PERMANENT and job.last_error.code == "failed_after_send"
    assert "479" in job.last_error.message
    assert ex.uow.instances.rows == {}  # not an instance's restriction


async def test_a_failure_report_about_a_message_that_is_not_ours_changes_nothing():
    ex = Executor()
    await sent(ex)
    async with ex.uow as uow:
        assert not await RecordSendFailureHandler(ex.clock)(
            uow,
            RecordSendFailure(
                provider_message_id="true_1@c.us_OTHER",
                client_message_id=None,
                error_code="463",
                reachout_timelock=True,
                occurred_at=T0,
            ),
        )


async def test_an_operators_retry_of_a_time_locked_job_waits_for_the_lock_to_lift():
    ex = Executor()
    instance = new_id()
    job_id = await sent(ex, instance_id=instance)
    await report_failure(ex, job_id)
    await RetryJobHandler(ex.uow, ex.clock)(RetryJob(organization_id=ORG, job_id=job_id, actor="ana"))
    assert await ex.run_due() == [Outcome.HELD]  # the Gate's cooldown aside, the instance is still locked
    assert len(ex.provider.sent) == 1
    assert await fact(ex, instance, FactKind.TIMELOCK_LIFTED)
    assert await ex.run_due() == [Outcome.SENT]  # woken at once by the lift


# --- 4. restriction-aware execution ------------------------------------------------------------------


async def test_a_sync_463_holds_the_instances_other_jobs_without_spending_attempts():
    ex = Executor()
    instance = new_id()
    first = await ex.approve(instance_id=instance)
    ex.provider.fail_next(ProviderError.restricted(Restriction.REACHOUT_TIMELOCK, "reachout_timelock"))
    assert await ex.run_due() == [Outcome.FAILED]
    assert ex.job(first).status is ExecutionStatus.FAILED
    second = await ex.approve(instance_id=instance)
    assert await ex.run_due() == [Outcome.HELD]
    job = ex.job(second)
    assert job.status is ExecutionStatus.PENDING and job.attempts == 0 and job.held_by_pause
    assert job.next_attempt_at == T0 + POLICY.pause_recheck
    assert len(ex.provider.sent) == 0


async def test_a_time_lock_with_an_end_releases_its_jobs_at_the_end():
    ex = Executor()
    instance = new_id()
    await fact(ex, instance, FactKind.TIMELOCKED, timelock_until=T0 + timedelta(seconds=30))
    job_id = await ex.approve(instance_id=instance)
    assert await ex.run_due() == [Outcome.HELD]
    assert ex.job(job_id).next_attempt_at == T0 + timedelta(seconds=30)  # before the re-check
    ex.clock.advance(seconds=30)
    assert await ex.run_due() == [Outcome.SENT]


async def test_a_logged_out_instance_is_held_until_it_connects_and_never_failed():
    ex = Executor()
    instance = new_id()
    await fact(ex, instance, FactKind.CONNECTION, connection_state=ConnectionState.LOGGED_OUT)
    job_id = await ex.approve(instance_id=instance)
    for _ in range(5):
        assert await ex.run_due() == [Outcome.HELD]
        ex.clock.advance(POLICY.pause_recheck)
    assert ex.job(job_id).attempts == 0 and ex.provider.sent == []
    assert await fact(ex, instance, FactKind.CONNECTION, connection_state=ConnectionState.CONNECTED)
    assert ex.job(job_id).next_attempt_at == ex.clock.now()  # woken, not at the next re-check
    assert await ex.run_due() == [Outcome.SENT]


async def test_a_held_jobs_intent_still_expires():
    ex = Executor()
    instance = new_id()
    await fact(ex, instance, FactKind.CONNECTION, connection_state=ConnectionState.BANNED)
    job_id = await ex.approve(instance_id=instance, expires_at=T0 + timedelta(minutes=2))
    assert await ex.run_due() == [Outcome.HELD]
    ex.clock.advance(minutes=2)
    assert await ex.run_due() == [Outcome.EXPIRED]
    assert ex.job(job_id).status is ExecutionStatus.FAILED and ex.provider.sent == []


async def test_a_logged_out_send_error_holds_the_instance():
    ex = Executor()
    instance = new_id()
    await ex.approve(instance_id=instance)
    ex.provider.fail_next(ProviderError.restricted(Restriction.LOGGED_OUT, "logged_out"))
    assert await ex.run_due() == [Outcome.FAILED]
    assert ex.uow.instance(instance).connection is ConnectionState.LOGGED_OUT
    await ex.approve(instance_id=instance)
    assert await ex.run_due() == [Outcome.HELD]


async def test_a_fact_naming_only_an_unknown_reference_is_dropped():
    ex = Executor()
    assert not await fact(ex, "", FactKind.TIMELOCKED, provider_instance_ref="nobody")
    assert ex.uow.instances.rows == {}


# --- 5. health probes --------------------------------------------------------------------------------


def prober_for(ex: Executor, prober: FakeHealthProber) -> ProbeInstancesHandler:
    return ProbeInstancesHandler(
        ex.uow, prober=prober, clock=ex.clock, interval=timedelta(seconds=60), concurrency=2
    )


async def test_a_probe_publishes_only_changes_as_provider_events():
    ex = Executor()
    instance = new_id()
    await register(ex, instance)
    prober = FakeHealthProber()
    prober.health["sales-1"] = InstanceHealth(connection=ConnectionState.CONNECTED, timelocked=False)
    probe = prober_for(ex, prober)
    report = await probe(ProbeInstances(10))
    assert report.probed == 1 and report.changed == 1
    [connected] = ex.uow.events_of(ProviderHealthReported)
    assert isinstance(connected, ProviderHealthReported)
    assert connected.change == "CONNECTION" and connected.connection_state == "CONNECTED"
    assert (await probe(ProbeInstances(10))).probed == 0  # not due again within the interval
    ex.clock.advance(seconds=60)
    assert (await probe(ProbeInstances(10))).changed == 0  # the same answer: nothing published
    assert len(ex.uow.events_of(ProviderHealthReported)) == 1


async def test_a_probe_finding_the_lock_lifted_releases_the_held_jobs():
    ex = Executor()
    instance = new_id()
    await register(ex, instance)
    await fact(ex, instance, FactKind.TIMELOCKED, timelock_until=None)
    job_id = await ex.approve(instance_id=instance)
    assert await ex.run_due() == [Outcome.HELD]
    prober = FakeHealthProber()
    prober.health["sales-1"] = InstanceHealth(timelocked=False)
    await prober_for(ex, prober)(ProbeInstances(10))
    reported = ex.uow.events_of(ProviderHealthReported)
    assert [e.change for e in reported if isinstance(e, ProviderHealthReported)] == ["TIMELOCK_LIFTED"]
    assert ex.job(job_id).next_attempt_at == ex.clock.now()
    assert await ex.run_due() == [Outcome.SENT]


async def test_a_failing_probe_is_logged_once_per_outage_and_changes_nothing(caplog):
    ex = Executor()
    instance = new_id()
    await register(ex, instance)
    prober = FakeHealthProber()
    prober.failing["sales-1"] = "http_503"
    probe = prober_for(ex, prober)
    for _ in range(3):
        report = await probe(ProbeInstances(10))
        assert report.failed == 1 and report.failures == {"http_503": 1}
        ex.clock.advance(seconds=60)
    assert [r.message for r in caplog.records].count("health probe failing") == 1
    assert ex.uow.events_of(ProviderHealthReported) == []
    del prober.failing["sales-1"]
    assert (await probe(ProbeInstances(10))).probed == 1


async def test_instances_a_provider_cannot_probe_are_skipped():
    ex = Executor()
    await register(ex, new_id())
    prober = FakeHealthProber()
    prober.unprobeable.add("sales-1")
    report = await prober_for(ex, prober)(ProbeInstances(10))
    assert report.skipped == 1 and prober.probed == []


async def test_nothing_is_probed_without_a_configured_provider():
    ex = Executor()
    await register(ex, new_id())
    prober = FakeHealthProber(providers=())
    assert (await prober_for(ex, prober)(ProbeInstances(10))).probed == 0
    assert prober.probed == []
