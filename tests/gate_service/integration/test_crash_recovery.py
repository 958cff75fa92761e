"""kill -9 the Gate process three times during a 1,000-intent run, restarting it each time, with the
Executor and the provider simulator running and a client that repeats each SubmitIntent with the same
idempotency key until it is answered: one intent per key, no message sent twice, every intent SENT.

It prints how long a message sent around a kill took to show SENT at the Gate (the simulator's time of
the send to the Gate's write of SENT): what the consumers' ack wait decides (ADR 0030). Not asserted: the
bench `recovery_after_kill` measures it."""

from __future__ import annotations

from collections import Counter

from tests.conftest import NATS_URL, REDIS_URL
from tests.executor_service.integration.harness import own_streams
from tests.sending_path import FINAL, around, run_with_gate_kills, spread

INTENTS = 1000
KILLS = 3
RATE = 80  # intents a second: the run lasts long enough for three kills and restarts mid-run
ORG = "org-gate-crash"


async def test_three_kill_9s_of_the_gate_lose_no_intent_and_send_none_twice(
    migrated_database, jetstream, subject_root, redis_prefix, redis_client
):
    async with own_streams(jetstream, subject_root) as root:
        run = await run_with_gate_kills(
            js=jetstream,
            root=root,
            gate_url=migrated_database("gate_service"),
            executor_url=migrated_database("executor_service"),
            nats_url=NATS_URL,
            redis_url=REDIS_URL,
            redis_prefix=f"{redis_prefix}gate-crash:",
            organization=ORG,
            intents=INTENTS,
            kills=KILLS,
            rate=RATE,
        )

    delays = run.send_to_sent()
    final = Counter(row.status for row in run.rows)
    client = run.client
    print(
        f"\nkills={len(run.windows)} intents={dict(final)} ledger={len(run.entries)} "
        f"answers={dict(client.statuses)} repeated calls={dict(client.failures)}\n"
        f"Gate down for {', '.join(f'{end - start - 1.0:.1f}' for start, end in run.windows)} s\n"
        f"send→SENT around the kills: {spread(around(delays, run.windows))}\n"
        f"send→SENT, all:             {spread([delay for _, delay in delays.values()])}"
    )

    assert len(run.windows) == KILLS
    keys = Counter(row.idempotency_key for row in run.rows)
    assert set(keys) == {client.key(n) for n in range(INTENTS)}  # nothing lost...
    assert set(keys.values()) == {1}  # ...and one intent per key
    assert all(len(ids) == 1 for ids in client.answers.values())  # every answer for a key: that intent
    assert {next(iter(ids)) for ids in client.answers.values()} == {row.id for row in run.rows}
    assert run.duplicates == {}  # no message sent twice
    assert set(final) <= FINAL, final  # every intent came to an end
    assert final["SENT"] == len(delays) == len(run.entries)  # every SENT one was really sent, and back
