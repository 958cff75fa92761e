"""Helpers for the executor's integration tests: a real executor (Postgres, JetStream, HTTP to the
simulator) assembled in this event loop, its own subject root, and typed events published as the other
contexts publish them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Row, func, select

from executor_service.bootstrap import Executor, assemble
from executor_service.config import ExecutorSettings
from executor_service.infrastructure.tables import instances, jobs
from libs.messaging.streams import delete_streams, ensure_streams
from libs.rpc.convert import to_timestamp
from libs.seedwork.ids import new_id
from libs.testing.jetstream import meta, simulator_instance_registered
from libs.testing.waiting import eventually
from tests.conftest import NATS_URL
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import gate_events_pb2, ops_events_pb2, provider_events_pb2, reputation_events_pb2
from whatlead.ops.v1 import ops_pb2

_roots = itertools.count(1)
API_KEY = "sim-key-0123456789"


@contextlib.asynccontextmanager
async def own_streams(js: Any, subject_root: str) -> AsyncIterator[str]:
    """A subject root (and streams) for one test: durable consumer positions never leak between tests."""
    root = f"{subject_root}e{next(_roots)}"
    await ensure_streams(js, root)
    try:
        yield root
    finally:
        await delete_streams(js, root)


def settings(database_url: str, root: str, simulator_url: str, **overrides: Any) -> ExecutorSettings:
    values: dict[str, Any] = dict(
        database_url=database_url,
        nats_url=NATS_URL,
        subject_root=root,
        simulator_url=simulator_url,
        simulator_api_key=API_KEY,
        workers=2,
        batch_size=16,
        poll_interval_seconds=0.05,
        lease_seconds=3.0,
        provider_timeout_seconds=2.0,
        backoff_base_seconds=0.1,
        backoff_max_seconds=1.0,
        pause_recheck_seconds=60.0,
        reconcile_interval_seconds=0.2,
        kill_switch_refresh_seconds=0.1,
    )
    values.update(overrides)
    return ExecutorSettings(**values)


@contextlib.asynccontextmanager
async def running(
    config: ExecutorSettings, *, loops: bool = True, workers: bool = True
) -> AsyncIterator[Executor]:
    """The executor with its relay, consumers, reconciler and (unless told otherwise) workers running."""
    executor = await assemble(config)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    if loops:
        runners = [executor.infra.relay.run, executor.reconciler.run, executor.heard_controls.run]
        runners += [c.run for c in executor.consumers]
        if workers:
            runners += [w.run for w in executor.workers]
        tasks = [asyncio.create_task(run(stop)) for run in runners]
    try:
        yield executor
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=15)
        await executor.close()


def approved(
    organization_id: str,
    *,
    session: str,
    phone: str = "5511987654321",
    text: str = "hello",
    instance_id: str | None = None,
    campaign_id: str = "",
    intent_id: str | None = None,
    event_id: str | None = None,
    provider: common_pb2.Provider.ValueType = common_pb2.PROVIDER_SIMULATOR,
    message_type: common_pb2.MessageType.ValueType = common_pb2.MESSAGE_TYPE_TEXT,
    payload: common_pb2.MessagePayload | None = None,
) -> gate_events_pb2.IntentApproved:
    """An approval as the gate publishes it: a text unless `message_type` and `payload` say otherwise."""
    intent_id = intent_id or new_id()
    return gate_events_pb2.IntentApproved(
        meta=meta(organization_id, intent_id, event_id=event_id),
        intent_id=intent_id,
        target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value=phone),
        type=message_type,
        payload=payload or common_pb2.MessagePayload(text=common_pb2.TextPayload(text=text)),
        purpose=common_pb2.PURPOSE_DISPATCH,
        instance_id=instance_id or new_id(),
        provider=provider,
        provider_instance_ref=session,
        campaign_id=campaign_id,
    )


def control_changed(
    organization_id: str,
    *,
    paused: bool,
    version: int,
    scope: ops_pb2.ControlScope.ValueType = ops_pb2.CONTROL_SCOPE_ORGANIZATION,
) -> ops_events_pb2.ExecutionControlChanged:
    return ops_events_pb2.ExecutionControlChanged(
        meta=meta(organization_id, organization_id),
        control=ops_pb2.ExecutionControl(
            organization_id=organization_id,
            scope=scope,
            scope_id=organization_id,
            status=ops_pb2.CONTROL_STATUS_PAUSED if paused else ops_pb2.CONTROL_STATUS_ACTIVE,
            reason=ops_pb2.CONTROL_REASON_INCIDENT,
            version=version,
            updated_at=to_timestamp(datetime.now(UTC)),
        ),
    )


def provider_event(
    organization_id: str,
    provider_message_id: str,
    kind: provider_events_pb2.ProviderEventType.ValueType,
    *,
    session: str,
) -> provider_events_pb2.ProviderEventReceived:
    return provider_events_pb2.ProviderEventReceived(
        meta=meta(organization_id, session),
        type=kind,
        provider=common_pb2.PROVIDER_SIMULATOR,
        provider_instance_ref=session,
        provider_message_id=provider_message_id,
        from_me=True,
        occurred_at=to_timestamp(datetime.now(UTC)),
    )


def instance_registered(
    organization_id: str,
    instance_id: str,
    *,
    session: str,
    provider: common_pb2.Provider.ValueType,
    version: str = "",
    engine: common_pb2.ProviderEngine.ValueType = common_pb2.PROVIDER_ENGINE_UNSPECIFIED,
) -> reputation_events_pb2.InstanceRegistered:
    """A connected instance on `provider` at that release and engine, as the registry announces it."""
    registered = simulator_instance_registered(organization_id, instance_id, provider_instance_ref=session)
    registered.instance.provider = provider
    registered.instance.provider_version = version
    registered.instance.provider_engine = engine
    return registered


async def projected(executor: Executor, instance_id: str, *, version: int = 1, timeout: float = 15) -> None:
    """Wait until the executor's instance projection holds the registry's `version` of the instance: jobs
    created before it would get the provider's most cautious row."""

    async def landed() -> bool:
        async with executor.infra.sessions() as session:
            found = await session.scalar(
                select(instances.c.version).where(instances.c.instance_id == instance_id)
            )
        return found is not None and found >= version

    await eventually(landed, timeout=timeout)


async def job_row(executor: Executor, intent_id: str) -> Row[Any]:
    """The job of an intent as stored (status, attempts, ids, last error...)."""
    async with executor.infra.sessions() as session:
        return (await session.execute(select(jobs).where(jobs.c.intent_id == intent_id))).one()


def last_error(row: Row[Any]) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(row.last_error)) if row.last_error else {}


async def status_counts(executor: Executor, organization_id: str) -> dict[str, int]:
    async with executor.infra.sessions() as session:
        rows = (
            await session.execute(
                select(jobs.c.status, func.count())
                .where(jobs.c.organization_id == organization_id)
                .group_by(jobs.c.status)
            )
        ).all()
    return {str(status): cast(int, count) for status, count in rows}
