"""ExecutorService over gRPC: proto -> command -> use case -> proto, nothing else."""

from __future__ import annotations

import grpc

from executor_service.application.queries import GetJob, GetJobHandler, ListJobs, ListJobsHandler
from executor_service.application.retry_job import RetryJob, RetryJobHandler
from executor_service.domain.job import ExecutionStatus
from executor_service.domain.ports import JobFilter
from executor_service.infrastructure.proto_mapping import job_to_proto
from libs.rpc.convert import enum_from_proto
from libs.rpc.principal import current_actor
from libs.seedwork.errors import InvalidArgument
from libs.seedwork.pagination import page_request
from whatlead.executor.v1 import executor_pb2, executor_pb2_grpc


class ExecutorServicer(executor_pb2_grpc.ExecutorServiceServicer):
    def __init__(
        self, *, get_job: GetJobHandler, list_jobs: ListJobsHandler, retry_job: RetryJobHandler
    ) -> None:
        self._get = get_job
        self._list = list_jobs
        self._retry = retry_job

    async def GetJob(
        self, request: executor_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> executor_pb2.GetJobResponse:
        job = await self._get(GetJob(request.organization_id, request.job_id))
        return executor_pb2.GetJobResponse(job=job_to_proto(job))

    async def ListJobs(
        self, request: executor_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> executor_pb2.ListJobsResponse:
        status = enum_from_proto(executor_pb2.JobStatus, request.status, ExecutionStatus)
        if request.status and status is None:
            raise InvalidArgument.of("status", f"unknown job status {request.status}")
        page = await self._list(
            ListJobs(
                request.organization_id,
                page_request(request.page_size, request.page_token),
                JobFilter(
                    intent_id=request.intent_id or None,
                    status=status,
                    instance_id=request.instance_id or None,
                ),
            )
        )
        return executor_pb2.ListJobsResponse(
            jobs=[job_to_proto(job) for job in page.items], next_page_token=page.next_page_token
        )

    async def RetryJob(
        self, request: executor_pb2.RetryJobRequest, context: grpc.aio.ServicerContext
    ) -> executor_pb2.RetryJobResponse:
        job = await self._retry(
            RetryJob(
                organization_id=request.organization_id,
                job_id=request.job_id,
                actor=request.actor,
                caller=current_actor(),
            )
        )
        return executor_pb2.RetryJobResponse(job=job_to_proto(job))
