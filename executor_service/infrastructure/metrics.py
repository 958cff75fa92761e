"""Prometheus series of the executor (labels never carry ids: bounded cardinality)."""

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor_service.domain.job import ExecutionStatus
from executor_service.infrastructure.tables import jobs

EXECUTIONS = Counter(
    "whatlead_executor_executions_total",
    "Claimed jobs by what their execution did (SENT, RETRY, FAILED, NEEDS_REVIEW, AMBIGUOUS, PAUSED, ...)",
    ["provider", "outcome"],
)
SEND_SECONDS = Histogram(
    "whatlead_executor_execution_seconds",
    "Time from claim to recorded outcome of one job",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CLAIMED = Counter("whatlead_executor_claimed_total", "Jobs claimed by workers")
LEASES_EXPIRED = Counter(
    "whatlead_executor_leases_expired_total",
    "PROCESSING jobs whose lease expired (worker died or hung), taken over for reconciliation",
)
RECONCILED = Counter(
    "whatlead_executor_reconciled_total",
    "Reconciliations of jobs with an unknown outcome, by finding",
    # found, absent, inconclusive (lookup proved nothing), unsupported (cannot be asked), needs_review (all
    # that went to review, inconclusive and unsupported included), unanswered (asked again later)
    ["finding"],
)
LEASE_LOST = Counter(
    "whatlead_executor_lease_lost_total", "Outcomes not written because another worker took the job over"
)
IN_FLIGHT = Gauge(
    "whatlead_executor_in_flight",
    "Jobs being executed by this process right now",
    multiprocess_mode="livesum",
)
JOBS_CREATED = Counter("whatlead_executor_jobs_created_total", "Jobs created from approved intents")
DELIVERY_UPDATES = Counter(
    "whatlead_executor_delivery_updates_total", "Delivery progress published from provider events", ["status"]
)
FAILED_AFTER_SEND = Counter(
    "whatlead_executor_failed_after_send_total",
    "Jobs failed by the provider's later report that the send failed (an ERROR ack), by WhatsApp code",
    ["kind"],  # reachout_timelock (WhatsApp 463) or other
)
PROBES = Counter(
    "whatlead_executor_probes_total",
    "Health probes of instances by result (answered, changed, failed, skipped)",
    ["result"],
)
PROBE_FAILURES = Counter(
    "whatlead_executor_probe_failures_total", "Health probes without a usable answer, by code", ["code"]
)
JOBS = Gauge(
    "whatlead_executor_jobs",
    "Jobs per state (PENDING, PROCESSING, RETRY, SENT, FAILED, NEEDS_REVIEW) in the database, as of the last "
    "reading",
    ["state"],
    multiprocess_mode="mostrecent",  # every process reads the same table
)


async def report_jobs(sessions: async_sessionmaker[AsyncSession]) -> None:
    query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
    async with sessions() as session:
        found: dict[str, int] = {row[0]: int(row[1]) for row in await session.execute(query)}
    for state in ExecutionStatus:
        JOBS.labels(state.value).set(found.get(state.value, 0))
