"""`whatlead events`: print the typed events stored in a context's JetStream stream.

With --output json, one document per event: {"subject": ..., "type": <the event's proto name>, "event":
<the event as proto JSON>}.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import grpc

from libs.cli.common import Commands, StatusError, deadline, endpoint, json_output, output, show


def tail_events(args: argparse.Namespace) -> int:
    return asyncio.run(_tail_events(args))


async def _connect(url: str, source: str) -> Any:
    """A NATS client, or UNAVAILABLE within --timeout: nats-py itself keeps retrying a server that refuses
    the connection, so its first error ends the attempt."""
    import nats

    failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def on_error(error: BaseException) -> None:
        if not failed.done():
            failed.set_result(error)

    connecting = asyncio.ensure_future(
        nats.connect(url, connect_timeout=deadline(), allow_reconnect=False, error_cb=on_error)
    )
    waited: list[asyncio.Future[Any]] = [connecting, failed]
    done, _ = await asyncio.wait(waited, timeout=deadline(), return_when=asyncio.FIRST_COMPLETED)
    if connecting in done:
        return connecting.result()
    connecting.cancel()
    reason = f": {failed.result()}" if failed.done() else f" within {deadline():g} s"
    raise StatusError(
        grpc.StatusCode.UNAVAILABLE, f"cannot reach NATS at {url}{reason} (address from {source})"
    )


async def _tail_events(args: argparse.Namespace) -> int:
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    from libs.messaging import envelope

    found = endpoint("nats", args.nats, "--nats")
    client = await _connect(found.value, found.source)
    try:
        js = client.jetstream()
        stream = envelope.stream_name(args.root, args.context)
        try:
            sub = await js.pull_subscribe(
                envelope.context_subjects(args.root, args.context),
                stream=stream,
                config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
            )
        except NotFoundError:
            raise StatusError(
                grpc.StatusCode.NOT_FOUND,
                f"no stream {stream} at {found.value} (has {args.context} started?)",
            ) from None
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
                if json_output():
                    output(
                        {"subject": msg.subject, "type": event.DESCRIPTOR.full_name, "event": _as_dict(event)}
                    )
                else:
                    print(f"# {msg.subject}  {event.DESCRIPTOR.full_name}")
                    show(event)
                    sys.stdout.flush()  # --follow into a pipe: each event as it comes
                shown += 1
                if args.limit and shown >= args.limit:
                    break
        return 0
    finally:
        await client.close()


def _as_dict(event: Any) -> Any:
    from google.protobuf import json_format

    return json_format.MessageToDict(event, preserving_proto_field_name=True)


def register(commands: Commands) -> None:
    events = commands.add_parser("events", help="print the typed events stored in a context's stream")
    events.add_argument(
        "--context", default="reputation", choices=["gate", "executor", "reputation", "ops", "gateway"]
    )
    events.add_argument(
        "--nats", help="NATS URL (default $WHATLEAD_NATS_URL, the stack file, else `make run`'s)"
    )
    events.add_argument("--root", default="whatlead", help="subject root (tests use their own)")
    events.add_argument("--limit", type=int, default=0, help="stop after N events (0: all)")
    events.add_argument("--follow", action="store_true", help="keep waiting for new events")
    events.add_argument("--wait", type=float, default=1.0, help=argparse.SUPPRESS)
    events.set_defaults(run=tail_events)
