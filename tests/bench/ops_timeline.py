"""Ops' audit timeline: GetIntentTimeline with 10,000 and with 1,000,000 events in ops' store.

    .venv/bin/python -m tests.bench ops_timeline

Two databases built by ops' migrations (with their indexes), one holding 10,000 events, one 1,000,000
(BENCH_OPS_EVENTS). Both hold the same measured intents: BENCH_OPS_INTENTS lives of one intent each as
every context publishes them (created, approved with its candidates, a pause and resume of its number, a
retry, sent, the provider's acks, a cooldown, delivered, read, a reply, and the facts around it that are
not its own: another intent, another organization, other instances and phones), recorded through the
product's own mapping (audit_mapping.record_from_event), spread over the last day. The rest is filler
written by one INSERT ... SELECT over generate_series (the product's ingest would take minutes for a
million): lives of ten facts each over the last 7 days, on the same organization and the same 50
instances (the measured intents go through one of them), so the intent's instance, organization and
phone lookups have 100 times more rows around them in the large store. Then VACUUM ANALYZE, as autovacuum
would after such a load.

The read is the product's: `python -m ops_service` on each database (both running; rounds alternate
between them in mirrored order: the box is shared, its load drifts), GetIntentTimeline over gRPC, one call
at a time, for a random measured intent; the bench checks that both stores answer the same entries.
Target: p99 at 1,000,000 within 1.2 times the p99 at 10,000.

Quick run: BENCH_OPS_EVENTS=100000 BENCH_OPS_READS=300. Every run uses its own databases and stream root,
and removes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg

from libs.db.migrations import upgrade
from libs.messaging.nats_connection import connect_nats
from libs.messaging.streams import delete_streams
from libs.seedwork.ids import new_id
from ops_service.infrastructure.timeline_mapping import record_from_event
from tests.bench._support import NATS_URL, ROOT, free_port, fresh_database, sqlalchemy_url
from tests.ops_service.story import Story, build_story
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

SMALL = 10_000
LARGE = int(os.environ.get("BENCH_OPS_EVENTS", "1000000"))
INTENTS = int(os.environ.get("BENCH_OPS_INTENTS", "100"))
READS = int(os.environ.get("BENCH_OPS_READS", "2000"))  # per store
ROUNDS = 8
WARMUP_READS = 50
INSTANCES = 50
FACTS_PER_LIFE = 10

_COLUMNS = (
    "event_id, type_name, subject, organization_id, aggregate_id, correlation_id, occurred_at, actor, "
    "instance_id, campaign_id, scope, remote_phone, provider_message_id, summary, payload"
)
# Filler: lives of ten facts (position k of a life is the k-th type), like the gate's, executor's,
# gateway's, reputation's and ops' events of an intent, with the columns the product fills for them.
_FILL = f"""
INSERT INTO timeline_events ({_COLUMNS})
SELECT 'fill-' || g,
       'whatlead.events.v1.' || (ARRAY['IntentCreated','IntentApproved','MessageSent','IntentSent',
         'ProviderEventReceived','ProviderEventReceived','MessageDeliveryStatusChanged',
         'MessageDeliveryStatusChanged','ProviderEventReceived',
         CASE WHEN life %% 2 = 0 THEN 'CooldownStarted' ELSE 'ExecutionControlChanged' END])[k + 1],
       'filler.subject',
       %(org)s,
       CASE WHEN k IN (4, 5, 8, 9) THEN instance ELSE 'life-' || life END,
       CASE WHEN k IN (4, 5) THEN 'pm-' || life WHEN k IN (8, 9) THEN instance ELSE 'life-' || life END,
       %(anchor)s::timestamptz - (life::float8 / %(lives)s) * interval '7 days' + k * interval '1 second',
       '',
       CASE WHEN k = 0 THEN '' ELSE instance END,
       '',
       CASE WHEN k = 9 AND life %% 2 = 1 THEN 'INSTANCE' ELSE '' END,
       CASE WHEN k IN (0, 1, 8) THEN phone ELSE '' END,
       CASE WHEN k IN (2, 3, 4, 5) THEN 'pm-' || life ELSE '' END,
       'filler',
       '\\x0a00'::bytea
FROM (
  SELECT g, g %% {FACTS_PER_LIFE} AS k, g / {FACTS_PER_LIFE} AS life,
         (%(instances)s::text[])[(g / {FACTS_PER_LIFE}) %% {INSTANCES} + 1] AS instance,
         '5511' || lpad(((g / {FACTS_PER_LIFE}) %% 50000)::text, 9, '0') AS phone
  FROM generate_series(0, %(count)s - 1) AS g
) AS facts
"""


def stories(anchor: datetime, org: str, instances: list[str]) -> list[Story]:
    """The measured intents, the same in both stores: one a few minutes apart over the last day."""
    spacing = timedelta(days=1) / max(INTENTS, 1)
    return [
        build_story(
            anchor - timedelta(days=1) + n * spacing, org=org, chosen=instances[0], refused=instances[1]
        )
        for n in range(INTENTS)
    ]


def fill(
    url: str, size: int, measured: list[Story], org: str, instances: list[str], anchor: datetime
) -> float:
    began = time.perf_counter()
    rows = []
    for story in measured:
        for event in story.events:
            record = record_from_event(event)
            r = record.recorded
            rows.append(
                (
                    r.event_id, r.type_name, r.subject, r.organization_id, r.aggregate_id, r.correlation_id,
                    r.occurred_at, r.actor, record.instance_id, record.campaign_id, record.scope,
                    record.remote_phone, record.provider_message_id, record.summary, r.payload,
                )
            )  # fmt: skip
    with psycopg.connect(url, autocommit=True) as connection:
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY timeline_events ({_COLUMNS}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        rest = max(0, size - len(rows))
        connection.execute(
            _FILL,
            {
                "org": org,
                "anchor": anchor,
                "lives": max(1, rest // FACTS_PER_LIFE),
                "count": rest,
                "instances": instances,
            },
        )
        connection.execute("VACUUM ANALYZE timeline_events")
        total = connection.execute("SELECT count(*) FROM timeline_events").fetchone()
    assert total is not None and total[0] == max(size, len(rows)), total
    return time.perf_counter() - began


@contextlib.asynccontextmanager
async def ops_process(database_url: str, root: str) -> AsyncIterator[Any]:
    """`python -m ops_service` on `database_url` and its own stream root; yields a stub to it."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "protos"), os.environ.get("PYTHONPATH", "")]),
        "OPS_DATABASE_URL": sqlalchemy_url(database_url),
        "OPS_NATS_URL": NATS_URL,
        "OPS_SUBJECT_ROOT": root,
        "OPS_GRPC_PORT": str(port),
        "OPS_METRICS_PORT": str(free_port()),
        "OPS_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "ops_service"], env=env, cwd=ROOT)  # noqa: ASYNC220
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=60)
            yield ops_pb2_grpc.OpsServiceStub(channel)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


async def main() -> None:
    began = time.perf_counter()
    anchor = datetime.now(UTC)
    org = new_id()
    instances = [new_id() for _ in range(INSTANCES)]
    measured = stories(anchor, org, instances)
    run = secrets.token_hex(4)
    root = f"benchops_{run}"
    nc = await connect_nats(NATS_URL, name="bench-ops")
    js = nc.jetstream()
    latencies: dict[int, list[float]] = {SMALL: [], LARGE: []}
    answers: dict[int, dict[str, list[str]]] = {SMALL: {}, LARGE: {}}
    try:
        with (
            fresh_database(f"bench_ops_{run}_small") as small_url,
            fresh_database(f"bench_ops_{run}_large") as large_url,
        ):
            urls = {SMALL: small_url, LARGE: large_url}
            for size, url in urls.items():
                await asyncio.to_thread(upgrade, sqlalchemy_url(url), ROOT / "ops_service" / "migrations")
                seconds = await asyncio.to_thread(fill, url, size, measured, org, instances, anchor)
                print(f"  filled {size:,} events in {seconds:.0f} s", flush=True)
            async with contextlib.AsyncExitStack() as stack:
                stubs = {
                    size: await stack.enter_async_context(ops_process(url, root))
                    for size, url in urls.items()
                }

                async def read(size: int, story: Story) -> float:
                    request = ops_pb2.GetIntentTimelineRequest(organization_id=org, intent_id=story.intent)
                    start = time.perf_counter()
                    response = await stubs[size].GetIntentTimeline(request)
                    elapsed = time.perf_counter() - start
                    answers[size][story.intent] = [entry.event_id for entry in response.entries]
                    return elapsed

                pick = random.Random(7)
                for size in (SMALL, LARGE):
                    for _ in range(WARMUP_READS):
                        await read(size, pick.choice(measured))
                per_round = max(1, READS // ROUNDS)
                for number in range(ROUNDS):
                    order = (SMALL, LARGE) if number % 2 == 0 else (LARGE, SMALL)
                    for size in order:
                        for _ in range(per_round):
                            latencies[size].append(await read(size, pick.choice(measured)))
    finally:
        with contextlib.suppress(Exception):
            await delete_streams(js, root)
        await nc.close()

    # The filler's own cooldowns and pauses of the measured intents' number may fall inside an intent's life:
    # they belong in its timeline, so the check is on the measured facts.
    for story in measured:
        if story.intent in answers[SMALL] and story.intent in answers[LARGE]:
            got = [
                [i for i in answers[size][story.intent] if not i.startswith("fill-")]
                for size in (SMALL, LARGE)
            ]
            if not got[0] == got[1] == story.timeline:
                kinds = {e.meta.event_id: type(e).__name__ for e in story.events}  # type: ignore[attr-defined]
                described = [[kinds.get(i, i) for i in ids] for ids in (*got, story.timeline)]
                raise AssertionError(f"intent {story.intent}: small, large, expected: {described}")
    small, large = latencies[SMALL], latencies[LARGE]
    p50a, p99a, p50b, p99b = (
        percentile(small, 50),
        percentile(small, 99),
        percentile(large, 50),
        percentile(large, 99),
    )

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.2f}"

    entries = len(measured[0].timeline)
    print(f"\nGetIntentTimeline over gRPC, {len(small)} reads per store, {entries} entries each")
    print(
        f"{'':<10}{f'{SMALL:,}: p50':>16}{'p99':>8}{f'{LARGE:,}: p50':>18}{'p99':>8}{'x p50':>8}{'x p99':>8}"
    )
    print(
        f"{'timeline':<10}{ms(p50a):>16}{ms(p99a):>8}{ms(p50b):>18}{ms(p99b):>8}"
        f"{p50b / p50a:>8.2f}{p99b / p99a:>8.2f}"
    )
    print(f"(target: x p99 <= 1.20, the read at {LARGE:,} against {SMALL:,}; ms)")
    print(f"(bench took {time.perf_counter() - began:.0f} s)")
