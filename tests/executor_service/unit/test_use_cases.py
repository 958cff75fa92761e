"""The executor's use cases end to end over fakes: no database, broker or HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

import grpc
import pytest

from executor_service.application.apply_control import ApplyControlChange, ApplyControlChangeHandler
from executor_service.application.claim_jobs import (
    Claim,
    ClaimJobs,
    ClaimJobsHandler,
    ExtendLeases,
    ExtendLeasesHandler,
)
from executor_service.application.create_job import CreateExecutionJob, CreateExecutionJobHandler
from executor_service.application.execute_job import (
    ExecuteJob,
    ExecuteJobHandler,
    Outcome,
    Recorded,
    RecordOutcomes,
    RecordOutcomesHandler,
)
from executor_service.application.queries import GetJob, GetJobHandler, ListJobs, ListJobsHandler
from executor_service.application.reconcile_jobs import (
    ReconcileExpiredLeases,
    ReconcileExpiredLeasesHandler,
    ReconciliationReport,
)
from executor_service.application.record_provider_event import (
    RecordProviderReport,
    RecordProviderReportHandler,
    ReportedStatus,
)
from executor_service.application.retry_job import RetryJob, RetryJobHandler
from executor_service.domain.events import (
    MessageDeliveryStatusChanged,
    MessageFailed,
    MessageNeedsReview,
    MessageRetryScheduled,
    MessageSent,
)
from executor_service.domain.job import ExecutionStatus, MessageExecutionJob
from executor_service.domain.outcome import RestrictionKind
from executor_service.domain.ports import JobFilter
from executor_service.domain.retry_policy import RetryPolicy
from executor_service.entrypoints.grpc_servicer import ExecutorServicer
from executor_service.infrastructure.proto_mapping import event_to_proto
from libs.providers.capabilities import Capabilities, LookupMethod
from libs.providers.port import ProviderError, Restriction
from libs.rpc.principal import reset_principal, set_principal
from libs.seedwork.access import Principal, Role
from libs.seedwork.clock import FakeClock
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.errors import FailedPrecondition, InvalidArgument, NotFound
from libs.seedwork.ids import new_id
from libs.seedwork.pagination import page_request
from libs.seedwork.shared_kernel import ControlScope, Provider
from tests.executor_service.unit.builders import LEASE, ORG, T0, text_message
from tests.executor_service.unit.fakes import (
    FakeCapabilityTable,
    FakeExecutorUnitOfWork,
    FakeInstanceDirectory,
    FakeKillSwitch,
    FakeMessageSender,
    capabilities,
)
from whatlead.events.v1 import executor_events_pb2
from whatlead.executor.v1 import executor_pb2

POLICY = RetryPolicy(max_attempts=3, base_delay=timedelta(seconds=2), factor=2.0, jitter=0.0)


# Keeps our id on every type, but cannot be asked (wuzapi where its history is off).
NO_LOOKUP = capabilities(lookup=LookupMethod.NONE, miss_proves_absence=False)
NEITHER = capabilities(client_id_types=frozenset(), lookup=LookupMethod.NONE, miss_proves_absence=False)
ASSUMED_TIMELOCK = timedelta(hours=1)


class Executor:
    """The use cases wired over fakes, with a clock the test moves."""

    def __init__(self, *, capabilities: Capabilities | None = None) -> None:
        self.clock = FakeClock(T0)
        self.uow = FakeExecutorUnitOfWork()
        self.provider = FakeMessageSender(self.clock)
        self.table = FakeCapabilityTable(capabilities)
        self.kill_switch = FakeKillSwitch()
        self.instances = FakeInstanceDirectory(self.uow, assumed_timelock=ASSUMED_TIMELOCK)
        self.create = CreateExecutionJobHandler(self.table, self.clock)
        self.claim_jobs = ClaimJobsHandler(self.uow, self.clock, lease=LEASE)
        self.extend_leases = ExtendLeasesHandler(self.uow, self.clock, lease=LEASE)
        self.execute_job = ExecuteJobHandler(
            sender=self.provider,
            kill_switch=self.kill_switch,
            instances=self.instances,
            capabilities=self.table,
            policy=POLICY,
            clock=self.clock,
            settle=LEASE,
        )
        self.record_outcomes = RecordOutcomesHandler(self.uow)
        self.reconcile_leases = ReconcileExpiredLeasesHandler(
            self.uow,
            sender=self.provider,
            instances=self.instances,
            capabilities=self.table,
            policy=POLICY,
            clock=self.clock,
            lease=LEASE,
        )

    async def claim(self, limit: int) -> Claim:
        return await self.claim_jobs(ClaimJobs(limit))

    async def extend(self, token: str, job_ids: Sequence[str]) -> int:
        return await self.extend_leases(ExtendLeases(token, tuple(job_ids)))

    async def execute(self, job: MessageExecutionJob) -> Outcome:
        """Send and record one claimed job, as a worker does with a batch of one."""
        outcome = await self.execute_job(ExecuteJob(job))
        [recorded] = await self.record_outcomes(RecordOutcomes((job,)))
        return outcome if recorded is Recorded.WRITTEN else Outcome(recorded.value)

    async def reconcile(self) -> ReconciliationReport:
        return await self.reconcile_leases(ReconcileExpiredLeases(100))

    async def approve(self, **overrides: object) -> str:
        fields: dict[str, object] = dict(
            intent_id=new_id(),
            organization_id=ORG,
            instance_id=new_id(),
            provider=Provider.WAHA,
            provider_instance_ref="sales-1",
            campaign_id="",
            message=text_message(),
            not_before=None,
            expires_at=None,
        )
        fields.update(overrides)
        async with self.uow as uow:
            job = await self.create(uow, CreateExecutionJob(**fields))  # type: ignore[arg-type]
            await uow.commit()
        return job.id if job else ""

    async def run_due(self) -> list[Outcome]:
        claim = await self.claim(100)
        return [await self.execute(job) for job in claim.jobs]

    def job(self, job_id: str):
        return self.uow.stored(job_id)


@pytest.fixture
def ex() -> Executor:
    return Executor()


async def test_an_approved_intent_creates_one_job_even_if_delivered_again(ex):
    intent = new_id()
    first = await ex.approve(intent_id=intent)
    again = await ex.approve(intent_id=intent)
    assert first and again == ""
    assert len(ex.uow.jobs.rows) == 1
    job = ex.job(first)
    assert job.client_message_id is not None and job.client_message_id.startswith("3EB0")


async def test_a_due_job_is_claimed_committed_then_sent_once(ex):
    job_id = await ex.approve()
    claim = await ex.claim(10)
    assert [j.id for j in claim.jobs] == [job_id]
    assert ex.job(job_id).status is ExecutionStatus.PROCESSING  # committed before any call
    assert ex.provider.sent == []
    assert await ex.execute(claim.jobs[0]) is Outcome.SENT
    stored = ex.job(job_id)
    assert stored.status is ExecutionStatus.SENT and stored.attempts == 1
    assert stored.provider_message_id == stored.client_message_id
    assert len(ex.provider.sent) == 1
    assert ex.provider.sent[0].client_message_id == stored.client_message_id
    assert [type(e) for e in ex.uow.committed_events] == [MessageSent]
    assert (await ex.claim(10)).jobs == []  # nothing left to claim


async def test_two_claims_never_share_a_job(ex):
    ids = {await ex.approve() for _ in range(5)}
    first = await ex.claim(3)
    second = await ex.claim(10)
    assert len(first.jobs) == 3 and len(second.jobs) == 2
    assert {j.id for j in first.jobs} | {j.id for j in second.jobs} == ids


async def test_a_transient_failure_is_retried_after_backoff_and_sent_once(ex):
    job_id = await ex.approve()
    ex.provider.fail_next(ProviderError.transient("http_503", status=503))
    assert await ex.run_due() == [Outcome.RETRY]
    assert ex.job(job_id).next_attempt_at == T0 + timedelta(seconds=2)
    assert await ex.run_due() == []  # not due yet
    ex.clock.advance(seconds=2)
    assert await ex.run_due() == [Outcome.SENT]
    assert len(ex.provider.sent) == 1 and ex.job(job_id).attempts == 2
    assert [type(e) for e in ex.uow.committed_events] == [MessageRetryScheduled, MessageSent]


async def test_transient_failures_end_in_failed_at_the_maximum(ex):
    job_id = await ex.approve()
    for _ in range(POLICY.max_attempts):
        ex.provider.fail_next(ProviderError.transient("timeout"))
    for _ in range(POLICY.max_attempts):
        await ex.run_due()
        ex.clock.advance(minutes=10)
    job = ex.job(job_id)
    assert job.status is ExecutionStatus.FAILED and job.attempts == POLICY.max_attempts
    assert isinstance(ex.uow.committed_events[-1], MessageFailed)


async def test_a_463_fails_at_once_with_the_restriction(ex):
    job_id = await ex.approve()
    ex.provider.fail_next(ProviderError.restricted(Restriction.REACHOUT_TIMELOCK, "reachout_timelock"))
    assert await ex.run_due() == [Outcome.FAILED]
    [failed] = ex.uow.events_of(MessageFailed)
    assert failed.error.restriction is RestrictionKind.REACHOUT_TIMELOCK
    ex.clock.advance(hours=1)
    assert await ex.run_due() == []  # never retried
    assert ex.job(job_id).attempts == 1


async def test_a_paused_organization_holds_its_jobs_without_spending_attempts(ex):
    job_id = await ex.approve()
    ex.kill_switch.controls.append(
        ExecutionControl(
            organization_id=ORG,
            scope=ControlScope.ORGANIZATION,
            scope_id=ORG,
            paused=True,
            paused_until=None,
            version=1,
            updated_at=T0,
        )
    )
    assert await ex.run_due() == [Outcome.PAUSED]
    job = ex.job(job_id)
    assert job.attempts == 0 and job.held_by_pause
    assert job.next_attempt_at == T0 + POLICY.pause_recheck
    assert ex.provider.sent == []
    ex.kill_switch.controls.clear()
    ex.clock.advance(POLICY.pause_recheck)
    assert await ex.run_due() == [Outcome.SENT]
    assert ex.job(job_id).attempts == 1


async def test_resuming_wakes_held_jobs_at_once(ex):
    job_id = await ex.approve(campaign_id="camp-1")
    paused = ExecutionControl(
        organization_id=ORG,
        scope=ControlScope.CAMPAIGN,
        scope_id="camp-1",
        paused=True,
        paused_until=None,
        version=1,
        updated_at=T0,
    )
    apply = ApplyControlChangeHandler(ex.clock)
    async with ex.uow as uow:
        assert await apply(uow, ApplyControlChange(paused))
        await uow.commit()
    ex.kill_switch.controls = list(ex.uow.controls.rows.values())
    assert await ex.run_due() == [Outcome.PAUSED]
    resumed = ExecutionControl(
        organization_id=ORG,
        scope=ControlScope.CAMPAIGN,
        scope_id="camp-1",
        paused=False,
        paused_until=None,
        version=2,
        updated_at=T0,
    )
    async with ex.uow as uow:
        assert not await apply(uow, ApplyControlChange(paused))  # an old version is dropped
        assert await apply(uow, ApplyControlChange(resumed))
        await uow.commit()
    ex.kill_switch.controls = list(ex.uow.controls.rows.values())
    assert ex.job(job_id).next_attempt_at == T0  # runnable now, not in a minute
    assert await ex.run_due() == [Outcome.SENT]


@pytest.mark.parametrize("scope", [ControlScope.INSTANCE, ControlScope.ORGANIZATION, ControlScope.CAMPAIGN])
async def test_each_paused_scope_holds_approved_jobs_never_failing_or_sending_and_resume_sends_once(
    ex, scope
):
    instance_id = new_id()
    job_id = await ex.approve(instance_id=instance_id, campaign_id="camp-1")
    other_job = await ex.approve(campaign_id="camp-2")  # another instance, another campaign
    scope_id = {ControlScope.INSTANCE: instance_id, ControlScope.ORGANIZATION: ORG}.get(scope, "camp-1")
    apply = ApplyControlChangeHandler(ex.clock)

    async def control(paused: bool, version: int) -> None:
        change = ExecutionControl(
            organization_id=ORG,
            scope=scope,
            scope_id=scope_id,
            paused=paused,
            paused_until=None,
            version=version,
            updated_at=ex.clock.now(),
        )
        async with ex.uow as uow:
            assert await apply(uow, ApplyControlChange(change))
            await uow.commit()
        ex.kill_switch.controls = list(ex.uow.controls.rows.values())

    await control(paused=True, version=1)
    # Held at every re-check, more times than a job may be attempted: still PENDING, nothing spent.
    for _ in range(POLICY.max_attempts + 2):
        outcomes = await ex.run_due()
        assert Outcome.PAUSED in outcomes
        ex.clock.advance(POLICY.pause_recheck)
    held = ex.job(job_id)
    assert (held.status, held.attempts, held.held_by_pause) == (ExecutionStatus.PENDING, 0, True)
    if scope is ControlScope.ORGANIZATION:
        assert ex.provider.sent == []
    else:  # only the paused scope is held
        assert ex.job(other_job).status is ExecutionStatus.SENT and len(ex.provider.sent) == 1

    await control(paused=False, version=2)
    # Runnable at once (not at the next re-check); the organization's pause held the other job too.
    held_jobs = 2 if scope is ControlScope.ORGANIZATION else 1
    assert await ex.run_due() == [Outcome.SENT] * held_jobs
    assert ex.job(job_id).status is ExecutionStatus.SENT and ex.job(job_id).attempts == 1
    assert len(ex.provider.sent) == 2  # each job once
    assert ex.uow.events_of(MessageFailed) == []


async def test_an_expired_intent_is_failed_without_a_call(ex):
    job_id = await ex.approve(expires_at=T0 + timedelta(seconds=5))
    ex.clock.advance(seconds=5)
    assert await ex.run_due() == [Outcome.EXPIRED]
    assert ex.provider.sent == [] and ex.job(job_id).status is ExecutionStatus.FAILED


async def test_a_lost_answer_is_reconciled_not_resent(ex):
    job_id = await ex.approve()
    ex.provider.fail_next(ProviderError.ambiguous("read_timeout"), accept=True)  # sent, answer lost
    assert await ex.run_due() == [Outcome.AMBIGUOUS]
    assert ex.job(job_id).status is ExecutionStatus.PROCESSING
    assert (await ex.reconcile()).rescued == 0  # still settling
    ex.clock.advance(LEASE + timedelta(seconds=1))
    report = await ex.reconcile()
    assert report.found == 1
    job = ex.job(job_id)
    assert job.status is ExecutionStatus.SENT and len(ex.provider.sent) == 1
    assert job.lease_expirations == 1


async def test_a_worker_that_died_before_the_request_left_is_sent_after_reconciliation(ex):
    job_id = await ex.approve()
    await ex.claim(10)  # the worker claims and dies
    ex.clock.advance(LEASE + timedelta(seconds=1))
    report = await ex.reconcile()
    assert report.absent == 1 and ex.job(job_id).status is ExecutionStatus.RETRY
    ex.clock.advance(minutes=1)
    assert await ex.run_due() == [Outcome.SENT]
    assert len(ex.provider.sent) == 1


async def test_without_lookup_a_dead_worker_leaves_the_job_for_review():
    ex = Executor(capabilities=NEITHER)
    job_id = await ex.approve()
    assert ex.job(job_id).client_message_id is None
    await ex.claim(10)
    ex.clock.advance(LEASE + timedelta(seconds=1))
    report = await ex.reconcile()
    assert report.needs_review == 1
    assert ex.job(job_id).status is ExecutionStatus.NEEDS_REVIEW
    assert ex.uow.events_of(MessageNeedsReview)
    assert ex.provider.sent == []


async def test_without_lookup_an_ambiguous_answer_needs_review_at_once():
    ex = Executor(capabilities=NEITHER)
    job_id = await ex.approve()
    ex.provider.fail_next(ProviderError.ambiguous("read_timeout"))
    assert await ex.run_due() == [Outcome.NEEDS_REVIEW]
    assert ex.job(job_id).status is ExecutionStatus.NEEDS_REVIEW


async def test_a_stale_worker_cannot_overwrite_a_rescued_job(ex):
    job_id = await ex.approve()
    claim = await ex.claim(10)
    stale = claim.jobs[0]
    ex.clock.advance(LEASE + timedelta(seconds=1))
    await ex.reconcile()  # absent -> RETRY
    assert await ex.execute(stale) is Outcome.LEASE_LOST
    assert ex.job(job_id).status is ExecutionStatus.RETRY


async def test_the_heartbeat_extends_only_leases_of_its_own_claim(ex):
    job_id = await ex.approve()
    claim = await ex.claim(10)
    ex.clock.advance(seconds=20)
    assert await ex.extend(claim.token, [job_id]) == 1
    assert ex.job(job_id).lease_until == T0 + timedelta(seconds=50)
    assert await ex.extend("another-claim", [job_id]) == 0


async def test_delivery_reports_are_correlated_by_provider_message_id(ex):
    job_id = await ex.approve()
    await ex.run_due()
    pmid = ex.job(job_id).provider_message_id
    record = RecordProviderReportHandler(ex.clock)
    async with ex.uow as uow:
        for status in (
            ReportedStatus.SERVER_ACK,
            ReportedStatus.DELIVERED,
            ReportedStatus.READ,
            ReportedStatus.DELIVERED,
        ):
            await record(
                uow,
                RecordProviderReport(
                    provider_message_id=pmid, client_message_id=None, status=status, occurred_at=T0
                ),
            )
        assert not await record(
            uow,
            RecordProviderReport(
                provider_message_id="not-ours",
                client_message_id=None,
                status=ReportedStatus.READ,
                occurred_at=T0,
            ),
        )
        await uow.commit()
    changes = ex.uow.events_of(MessageDeliveryStatusChanged)
    assert [c.status for c in changes] == ["DELIVERED", "READ"]
    assert all(c.correlation_id == ex.job(job_id).intent_id for c in changes)


async def test_a_report_about_a_job_under_review_settles_it_as_sent():
    ex = Executor(capabilities=NO_LOOKUP)  # the review path: the provider cannot be asked
    job_id = await ex.approve()
    ex.provider.fail_next(ProviderError.ambiguous("read_timeout"))
    await ex.run_due()
    job = ex.job(job_id)
    assert job.status is ExecutionStatus.NEEDS_REVIEW
    async with ex.uow as uow:
        await RecordProviderReportHandler(ex.clock)(
            uow,
            RecordProviderReport(
                provider_message_id=f"true_5511987654321@c.us_{job.client_message_id}",
                client_message_id=job.client_message_id,
                status=ReportedStatus.DELIVERED,
                occurred_at=T0,
            ),
        )
        await uow.commit()
    assert ex.job(job_id).status is ExecutionStatus.SENT
    assert [type(e) for e in ex.uow.committed_events[-2:]] == [MessageSent, MessageDeliveryStatusChanged]


async def test_an_operator_retries_a_failed_job_and_it_is_sent(ex):
    job_id = await ex.approve()
    ex.provider.fail_next(ProviderError.permanent("http_400"))
    await ex.run_due()
    retry = RetryJobHandler(ex.uow, ex.clock)
    job = await retry(RetryJob(organization_id=ORG, job_id=job_id, actor="ana"))
    assert job.status is ExecutionStatus.PENDING
    assert await ex.run_due() == [Outcome.SENT]
    with pytest.raises(FailedPrecondition):
        await retry(RetryJob(organization_id=ORG, job_id=job_id, actor="ana"))


async def test_an_operators_retry_names_the_operator_and_the_key_that_acted(ex):
    job_id = await ex.approve()
    ex.provider.fail_next(ProviderError.permanent("http_400"))
    await ex.run_due()
    servicer = ExecutorServicer(
        get_job=GetJobHandler(ex.uow),
        list_jobs=ListJobsHandler(ex.uow),
        retry_job=RetryJobHandler(ex.uow, ex.clock),
    )
    token = set_principal(Principal(ORG, Role.ADMIN, "0193-key"))
    try:
        await servicer.RetryJob(
            executor_pb2.RetryJobRequest(organization_id=ORG, job_id=job_id, actor="alice"),
            cast("grpc.aio.ServicerContext[Any, Any]", None),  # the servicer never touches it
        )
    finally:
        reset_principal(token)

    [scheduled] = [e for e in ex.uow.committed_events if isinstance(e, MessageRetryScheduled) and e.actor]
    published = event_to_proto(scheduled)
    assert isinstance(published, executor_events_pb2.MessageRetryScheduled)
    assert (published.actor, published.meta.actor) == ("alice (key:0193-key)", "alice (key:0193-key)")


@pytest.mark.parametrize(
    ("caller", "name", "recorded"),
    [("key:k-1", "", "key:k-1"), ("service", "", "service"), ("", "ana", "ana"), ("", "", "")],
)
async def test_a_retry_records_whichever_of_caller_and_name_there_is(ex, caller, name, recorded):
    job_id = await ex.approve()
    ex.provider.fail_next(ProviderError.permanent("http_400"))
    await ex.run_due()

    await RetryJobHandler(ex.uow, ex.clock)(
        RetryJob(organization_id=ORG, job_id=job_id, actor=name, caller=caller)
    )

    scheduled = [e for e in ex.uow.committed_events if isinstance(e, MessageRetryScheduled)][-1]
    published = event_to_proto(scheduled)
    assert isinstance(published, executor_events_pb2.MessageRetryScheduled)
    assert scheduled.actor == recorded and published.meta.actor == recorded


async def test_reads_and_retries_are_scoped_to_one_organization(ex):
    job_id = await ex.approve()
    with pytest.raises(NotFound):
        await GetJobHandler(ex.uow)(GetJob("other-org", job_id))
    with pytest.raises(NotFound):
        await RetryJobHandler(ex.uow, ex.clock)(
            RetryJob(organization_id="other-org", job_id=job_id, actor="")
        )
    page = await ListJobsHandler(ex.uow)(ListJobs("other-org", page_request(0, ""), JobFilter()))
    assert page.items == []
    assert (await GetJobHandler(ex.uow)(GetJob(ORG, job_id))).id == job_id


async def test_bad_input_reports_every_field():
    ex = Executor()
    with pytest.raises(InvalidArgument) as caught:
        await GetJobHandler(ex.uow)(GetJob(" ", "nope"))
    assert {v.field for v in caught.value.violations} == {"organization_id", "job_id"}
    with pytest.raises(InvalidArgument) as caught:
        await ListJobsHandler(ex.uow)(
            ListJobs(ORG, page_request(0, ""), JobFilter(intent_id="x", instance_id="y"))
        )
    assert {v.field for v in caught.value.violations} == {"intent_id", "instance_id"}


async def test_listing_pages_through_jobs_by_status_and_intent(ex):
    ids = [await ex.approve() for _ in range(5)]
    ex.provider.fail_next(ProviderError.permanent("http_400"))
    claim = await ex.claim(1)
    await ex.execute(claim.jobs[0])
    list_jobs = ListJobsHandler(ex.uow)
    failed = await list_jobs(ListJobs(ORG, page_request(0, ""), JobFilter(status=ExecutionStatus.FAILED)))
    assert [j.id for j in failed.items] == [claim.jobs[0].id]
    seen, token = [], ""
    while True:
        page = await list_jobs(ListJobs(ORG, page_request(2, token), JobFilter()))
        seen += [j.id for j in page.items]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(ids)
    one = await list_jobs(ListJobs(ORG, page_request(0, ""), JobFilter(intent_id=ex.job(ids[2]).intent_id)))
    assert [j.id for j in one.items] == [ids[2]]
