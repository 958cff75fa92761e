"""`whatlead jobs <intent_id>`: how the executor is doing with an intent (executor service)."""

from __future__ import annotations

import argparse

from libs.cli.common import Commands, channel, deadline, output, say
from whatlead.executor.v1 import executor_pb2, executor_pb2_grpc


def executor() -> executor_pb2_grpc.ExecutorServiceStub:
    return executor_pb2_grpc.ExecutorServiceStub(channel("executor"))


def show_jobs(args: argparse.Namespace) -> int:
    page = executor().ListJobs(
        executor_pb2.ListJobsRequest(organization_id=args.org, intent_id=args.intent_id, page_size=10),
        timeout=deadline(),
    )
    if not page.jobs:
        say(f"no job for intent {args.intent_id} (not approved yet, or another organization's)")
        return 1
    for job in page.jobs:
        output(job)
    return 0


def retry_job(args: argparse.Namespace) -> int:
    response = executor().RetryJob(
        executor_pb2.RetryJobRequest(organization_id=args.org, job_id=args.job_id, actor=args.actor),
        timeout=deadline(),
    )
    output(response.job)
    return 0


def register(commands: Commands) -> None:
    jobs = commands.add_parser("jobs", help="the execution job of an intent (status, attempts, last error)")
    jobs.add_argument("intent_id", nargs="?", help="the intent whose job to show")
    jobs.add_argument("--retry", dest="job_id", default="", help="retry this FAILED or NEEDS_REVIEW job")
    jobs.add_argument("--actor", default="", help="your name, recorded with your key (audit)")
    jobs.set_defaults(run=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    if args.job_id:
        return retry_job(args)
    if not args.intent_id:
        raise SystemExit("whatlead jobs: give an intent id (or --retry JOB_ID)")
    return show_jobs(args)
