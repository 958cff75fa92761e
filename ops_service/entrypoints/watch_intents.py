"""WatchIntents: an organization's intent changes as they happen (ADR 0048). The server's guard has
authenticated the caller, scoped the organization and validated the request.

A watcher reads from the process's hub (one ordered consumer of every organization's changes): from now
on, or after a position. A position the hub's ring covers is served from memory; an older one is caught up
from the ops stream (an ordered consumer on the organization's subject) and then handed to the hub, each
change once, in stream order. A watcher that falls `buffer` changes behind is cut off with
RESOURCE_EXHAUSTED, naming the position to resume from (in the message and in its ErrorInfo's metadata);
the others never wait for it.

Every stream names, in its initial metadata (`whatlead-position`), the position it starts after: the given
after_position, or for "from now" the hub's last position when the watcher was registered. A client cut
before its first change resumes from there and loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import cast

import grpc

from libs.messaging.fanout import Delivery, PositionExpired, Watcher, WatcherOverflowed
from libs.rpc.stream_start import START_POSITION_KEY
from libs.seedwork.errors import InvalidArgument, OutOfRange, Reason, ResourceExhausted
from ops_service.infrastructure import metrics
from ops_service.infrastructure.intent_stream import IntentHub, WatchedChange, organization_key
from whatlead.ops.v1 import ops_pb2

# The stream's context as the server's guard makes it: it writes responses serialized already as they are.
_Writer = grpc.aio.ServicerContext[ops_pb2.WatchIntentsRequest, bytes]
# Positions are JetStream stream sequences (uint64).
_MAX_POSITION = 2**64 - 1


@dataclass(frozen=True, slots=True)
class _Filter:
    intent_id: str
    campaign_id: str

    def wants(self, change: WatchedChange) -> bool:
        return (not self.intent_id or change.intent_id == self.intent_id) and (
            not self.campaign_id or change.campaign_id == self.campaign_id
        )


def _position(text: str) -> int | None:
    if not text:
        return None
    position = int(text)  # digits only: the request's own rule
    if position > _MAX_POSITION:
        raise InvalidArgument.of("after_position", "is not a position this stream gave")
    return position


class IntentWatch:
    def __init__(self, hub: IntentHub, *, buffer: int) -> None:
        self._hub = hub
        self._buffer = buffer

    async def WatchIntents(
        self,
        request: ops_pb2.WatchIntentsRequest,
        context: grpc.aio.ServicerContext[ops_pb2.WatchIntentsRequest, ops_pb2.WatchIntentsResponse],
    ) -> None:
        after = _position(request.after_position)
        wanted = _Filter(request.intent_id, request.campaign_id)
        try:
            watcher = await self._hub.watch(
                organization_key(request.organization_id), after=after, capacity=self._buffer
            )
        except PositionExpired as expired:
            raise OutOfRange(
                f"after_position {expired.position} is older than the changes kept (the oldest position is "
                f"{expired.first_sequence}); watch from now (no after_position) or from a later position",
                reason=Reason.POSITION_EXPIRED,
                metadata={
                    "field": "after_position",
                    "after_position": str(expired.position),
                    "oldest_position": str(expired.first_sequence),
                },
            ) from None
        metrics.WATCHERS.inc()
        try:
            # Before any change is written: the watcher's starting point, nothing of it delivered yet.
            await context.send_initial_metadata(((START_POSITION_KEY, str(watcher.last_sequence)),))
        except BaseException:
            watcher.close()
            metrics.WATCHERS.dec()
            raise
        writing = asyncio.ensure_future(self._deliver(watcher, wanted, cast(_Writer, context)))
        cut = asyncio.ensure_future(watcher.cut_off())
        try:
            await asyncio.wait((writing, cut), return_when=asyncio.FIRST_COMPLETED)
            if writing.done():
                writing.result()  # its error, if any (WatcherOverflowed from `take`)
                return
            raise cut.result()  # cut off while a write waited on the client
        except WatcherOverflowed as overflowed:
            metrics.WATCH_CUT_OFFS.inc()
            raise ResourceExhausted(
                f"this watcher fell {self._buffer} changes behind and was cut off; resume with "
                f"after_position={overflowed.last_sequence}",
                reason=Reason.WATCHER_TOO_SLOW,
                metadata={"after_position": str(overflowed.last_sequence)},
            ) from None
        finally:
            watcher.close()
            metrics.WATCHERS.dec()
            for task in (writing, cut):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _deliver(
        self,
        watcher: Watcher[WatchedChange],
        wanted: _Filter,
        context: _Writer,
    ) -> None:
        async for delivery in self._hub.catch_up(watcher):
            await self._write(delivery, wanted, context)
        while True:
            for delivery in await watcher.take():
                await self._write(delivery, wanted, context)

    @staticmethod
    async def _write(
        delivery: Delivery[WatchedChange],
        wanted: _Filter,
        context: _Writer,
    ) -> None:
        if wanted.wants(delivery.item):
            # Already serialized, once for every watcher (the server's guard writes bytes as they are).
            await context.write(delivery.item.response)
            metrics.WATCH_DELIVERIES.inc()
