"""ExecutorService over a real gRPC server: field violations, organization scoping, status codes."""

from __future__ import annotations

import grpc
import pytest

from executor_service.bootstrap import Executor
from executor_service.infrastructure.proto_mapping import create_job_command
from libs.provider_simulator import run_simulator
from libs.rpc.errors import field_violations
from libs.rpc.server import GrpcServer
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import Provider
from libs.testing.services import acting_channel
from tests.executor_service.integration.harness import API_KEY, approved, own_streams, running, settings
from whatlead.executor.v1 import executor_pb2, executor_pb2_grpc

ORG = "org-grpc"


@pytest.fixture
async def service(migrated_database, jetstream, subject_root):
    async with (
        own_streams(jetstream, subject_root) as root,
        run_simulator(api_key=API_KEY) as simulator,
        running(settings(migrated_database("executor_service"), root, simulator.base_url), loops=False) as ex,
    ):
        parts = ex.parts()
        assert parts.authenticator is not None
        server = GrpcServer(parts.bindings, host="127.0.0.1", port=0, authenticator=parts.authenticator)
        port = await server.start()
        channel = acting_channel(f"127.0.0.1:{port}", parts.authenticator, None)
        yield ex, executor_pb2_grpc.ExecutorServiceStub(channel)
        await channel.close()
        await server.stop(0)


async def create_jobs(ex: Executor, count: int, organization: str = ORG) -> list[str]:
    create = ex.create_job
    ids = []
    async with ex.unit_of_work() as uow:
        for _ in range(count):
            event = approved(organization, session="grpc-1")
            job = await create(uow, create_job_command(event, Provider.SIMULATOR))
            assert job is not None
            ids.append(job.id)
        await uow.commit()
    return ids


async def test_get_job_returns_the_job_of_the_organization_only(service):
    ex, stub = service
    [job_id] = await create_jobs(ex, 1)
    job = (await stub.GetJob(executor_pb2.GetJobRequest(organization_id=ORG, job_id=job_id))).job
    assert job.id == job_id and job.status == executor_pb2.JOB_STATUS_PENDING
    assert job.provider == 5 and job.client_message_id.startswith("3EB0")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetJob(executor_pb2.GetJobRequest(organization_id="someone-else", job_id=job_id))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_bad_requests_get_invalid_argument_with_every_field_violation(service):
    _, stub = service
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetJob(executor_pb2.GetJobRequest(organization_id="", job_id="nope"))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"organization_id", "job_id"}

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListJobs(executor_pb2.ListJobsRequest(organization_id=ORG, intent_id="x", instance_id="y"))
    assert set(field_violations(caught.value)) == {"intent_id", "instance_id"}

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListJobs(executor_pb2.ListJobsRequest(organization_id=ORG, page_token="not-a-token"))
    assert set(field_violations(caught.value)) == {"page_token"}

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListJobs(
            executor_pb2.ListJobsRequest(organization_id=ORG, status=executor_pb2.JobStatus.ValueType(99))
        )
    assert set(field_violations(caught.value)) == {"status"}

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RetryJob(executor_pb2.RetryJobRequest(organization_id=ORG, job_id="", actor="a" * 300))
    assert set(field_violations(caught.value)) == {"job_id", "actor"}


async def test_list_jobs_pages_and_filters_within_the_organization(service):
    ex, stub = service
    organization = f"org-{new_id()[-8:]}"
    ids = await create_jobs(ex, 5, organization)
    await create_jobs(ex, 2, "another-org")
    seen, token = [], ""
    while True:
        page = await stub.ListJobs(
            executor_pb2.ListJobsRequest(organization_id=organization, page_size=2, page_token=token)
        )
        seen += [job.id for job in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(ids)
    target = (await stub.GetJob(executor_pb2.GetJobRequest(organization_id=organization, job_id=ids[3]))).job
    by_intent = await stub.ListJobs(
        executor_pb2.ListJobsRequest(organization_id=organization, intent_id=target.intent_id)
    )
    assert [job.id for job in by_intent.jobs] == [ids[3]]
    pending = await stub.ListJobs(
        executor_pb2.ListJobsRequest(organization_id=organization, status=executor_pb2.JOB_STATUS_PENDING)
    )
    assert len(pending.jobs) == 5
    sent = await stub.ListJobs(
        executor_pb2.ListJobsRequest(organization_id=organization, status=executor_pb2.JOB_STATUS_SENT)
    )
    assert list(sent.jobs) == []


async def test_retry_job_only_for_failed_or_review_and_only_in_the_organization(service):
    ex, stub = service
    [job_id] = await create_jobs(ex, 1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RetryJob(executor_pb2.RetryJobRequest(organization_id=ORG, job_id=job_id, actor="ana"))
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RetryJob(executor_pb2.RetryJobRequest(organization_id="other", job_id=job_id, actor="ana"))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND

    # Make it FAILED the way a worker would, then retry it.
    from executor_service.application.claim_jobs import ClaimJobs
    from executor_service.domain.outcome import ErrorClass, JobError
    from executor_service.domain.retry_policy import RetryPolicy
    from libs.seedwork.clock import SystemClock

    claim = await ex.workers[0]._claim(ClaimJobs(10))
    [job] = claim.jobs
    now = SystemClock().now()
    job.record_failure(
        JobError(error_class=ErrorClass.PERMANENT, code="http_400", occurred_at=now),
        policy=RetryPolicy(),
        now=now,
    )
    async with ex.unit_of_work() as uow:
        uow.jobs.save(job)
        uow.track(job)
        await uow.commit()
    retried = (
        await stub.RetryJob(executor_pb2.RetryJobRequest(organization_id=ORG, job_id=job_id, actor="ana"))
    ).job
    assert retried.status == executor_pb2.JOB_STATUS_PENDING
    assert retried.last_error.code == "http_400" and retried.attempts == 1
