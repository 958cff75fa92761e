"""The watchers of the watch_fanout bench, in a process of their own (the server's process must not pay for
its clients): N server streams of WatchIntents (or of the bare loop's method, same messages), each reading
raw bytes until it has the measured changes.

    python -m tests.bench._watch_clients <address> <method> <organization> <watchers> <changes> [key]

Protocol on stdin/stdout (one JSON line each): prints {"opened": n} once every stream is open, then
{"warm": n} each time it is asked ("warm?" on stdin) how many streams have seen a warm-up change; the bench
publishes warm-ups until all have, then the measured changes; the measured changes (summary "t=<ns>",
their publication time) are counted by every stream, and their delays read by every tenth stream (a parse
per message for 1,000 streams would make the clients the thing measured). Prints the result and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import grpc

from libs.rpc.client import PresentCredential, for_every_call
from whatlead.ops.v1 import ops_pb2

STREAMS_PER_CHANNEL = 100  # one HTTP/2 connection each
WARMUP = b"warmup"
MEASURED = b"t="


async def main(address: str, method: str, organization: str, watchers: int, changes: int, key: str) -> None:
    channels = []
    for _ in range((watchers + STREAMS_PER_CHANNEL - 1) // STREAMS_PER_CHANNEL):
        interceptors = for_every_call(PresentCredential(key)) if key else []
        channels.append(
            grpc.aio.insecure_channel(
                address, interceptors=interceptors, options=[("grpc.use_local_subchannel_pool", 1)]
            )
        )
    request = ops_pb2.WatchIntentsRequest(organization_id=organization).SerializeToString()
    warm = [False] * watchers
    last_arrival = [0.0] * watchers
    delays: list[float] = []

    async def watch(index: int) -> None:
        channel = channels[index // STREAMS_PER_CHANNEL]
        # Raw bytes both ways: no (de)serializing but where a delay is read.
        raw: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
            method, request_serializer=None, response_deserializer=None
        )
        call = raw(request, timeout=600)
        sampled = index % 10 == 0
        seen = 0
        async for data in call:
            if not warm[index]:
                if WARMUP in data:
                    warm[index] = True
                continue
            if MEASURED not in data:
                continue  # a late warm-up
            now = time.time_ns()
            seen += 1
            if sampled:
                response = ops_pb2.WatchIntentsResponse.FromString(data)
                delays.append((now - int(response.change.summary[2:])) / 1e9)
            if seen == changes:
                last_arrival[index] = now / 1e9
                call.cancel()
                return

    tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
    await asyncio.sleep(0.5 + watchers / 1000)
    print(json.dumps({"opened": watchers}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while (await reader.readline()).strip() == b"warm?":
        print(json.dumps({"warm": sum(warm)}), flush=True)
    failed = 0
    for task in asyncio.as_completed(tasks):
        try:
            await task
        except grpc.aio.AioRpcError:
            failed += 1
    delays.sort()
    p50, p99 = (delays[int(len(delays) * q)] if delays else 0.0 for q in (0.5, 0.99))
    print(
        json.dumps({"last_arrival": max(last_arrival), "p50": p50, "p99": p99, "failed": failed}), flush=True
    )
    for channel in channels:
        await channel.close()


if __name__ == "__main__":
    address, method, organization, watchers, changes = sys.argv[1:6]
    key = sys.argv[6] if len(sys.argv) > 6 else ""
    asyncio.run(main(address, method, organization, int(watchers), int(changes), key))
