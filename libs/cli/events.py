"""`whatlead events`: print the typed events stored in a context's JetStream stream."""

from __future__ import annotations

import argparse
import asyncio
import os

from libs.cli.common import Commands, show


def tail_events(args: argparse.Namespace) -> int:
    return asyncio.run(_tail_events(args))


async def _tail_events(args: argparse.Namespace) -> int:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from libs.messaging import envelope

    client = await nats.connect(args.nats, connect_timeout=3, max_reconnect_attempts=0)
    try:
        js = client.jetstream()
        sub = await js.pull_subscribe(
            envelope.context_subjects(args.root, args.context),
            stream=envelope.stream_name(args.root, args.context),
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
        )
        shown = 0
        while args.limit == 0 or shown < args.limit:
            try:
                batch = await sub.fetch(100, timeout=args.wait)
            except TimeoutError:
                if not args.follow:
                    break
                continue
            for msg in batch:
                event = envelope.decode((msg.headers or {})[envelope.TYPE_HEADER], msg.data)
                print(f"# {msg.subject}  {event.DESCRIPTOR.full_name}")
                show(event)
                shown += 1
        return 0
    finally:
        await client.close()


def register(commands: Commands) -> None:
    events = commands.add_parser("events", help="print the typed events stored in a context's stream")
    events.add_argument(
        "--context", default="reputation", choices=["gate", "executor", "reputation", "ops", "gateway"]
    )
    events.add_argument("--nats", default=os.environ.get("WHATLEAD_NATS_URL", "nats://127.0.0.1:4322"))
    events.add_argument("--root", default="whatlead", help="subject root (tests use their own)")
    events.add_argument("--limit", type=int, default=0, help="stop after N events (0: all)")
    events.add_argument("--follow", action="store_true", help="keep waiting for new events")
    events.add_argument("--wait", type=float, default=1.0, help=argparse.SUPPRESS)
    events.set_defaults(run=tail_events)
