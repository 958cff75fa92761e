"""The watch_fanout bench's baseline: a bare grpc.aio server-streaming loop. It follows the same JetStream
subject (an ordered consumer), encodes each change's WatchIntentsResponse once, and writes it to every open
stream from an unbounded queue each: no authentication, validation, ring, filters, bounds or metrics.

    python -m tests.bench._bare_fanout <port> <nats url> <stream> <subject>
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from whatlead.events.v1 import ops_events_pb2
from whatlead.ops.v1 import ops_pb2

METHOD = "/bench.Bare/Watch"


async def main(port: int, url: str, stream: str, subject: str) -> None:
    queues: list[asyncio.Queue[bytes]] = []

    async def watch(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        queues.append(queue)
        try:
            while True:
                await context.write(await queue.get())
        finally:
            queues.remove(queue)

    handler = grpc.method_handlers_generic_handler(
        "bench.Bare",
        {"Watch": grpc.unary_stream_rpc_method_handler(watch)},
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()

    client = await nats.connect(url)
    js = client.jetstream()
    subscription = await js.subscribe(
        subject,
        stream=stream,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
    )
    print("ready", flush=True)
    async for msg in subscription.messages:
        change = ops_events_pb2.IntentChanged.FromString(msg.data).change
        response = ops_pb2.WatchIntentsResponse(
            change=change, position=str(msg.metadata.sequence.stream)
        ).SerializeToString()
        for queue in queues:
            queue.put_nowait(response)


if __name__ == "__main__":
    port, url, stream, subject = sys.argv[1:5]
    asyncio.run(main(int(port), url, stream, subject))
