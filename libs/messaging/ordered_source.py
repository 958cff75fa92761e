"""The fan-out hub's MessageSource on JetStream: ordered consumers (ephemeral, unacknowledged, in memory,
recreated by the client from the last sequence on a gap), one following the hub's filter and one per
catch-up on a watcher's subject."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from libs.messaging.fanout import StreamMessage

# Beats from the server on an idle ordered consumer: a consumer that stops beating is recreated by the
# client from the last sequence it delivered.
IDLE_HEARTBEAT_SECONDS = 5.0
# An idle catch-up's wait for its next message before it asks the server whether any is left.
_CATCH_UP_WAIT_SECONDS = 2.0


class JetStreamMessageSource:
    def __init__(self, js: JetStreamContext, *, stream: str, subject_filter: str) -> None:
        self._js = js
        self._stream = stream
        self._filter = subject_filter

    async def bounds(self) -> tuple[int, int]:
        state = (await self._js.stream_info(self._stream)).state
        return int(state.first_seq), int(state.last_seq)

    async def follow(self, start_sequence: int) -> AsyncIterator[StreamMessage]:
        subscription = await self._subscribe(self._filter, start_sequence)
        try:
            async for msg in subscription.messages:
                yield _message(msg)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def replay(
        self, subject: str, start_sequence: int, until_sequence: int
    ) -> AsyncIterator[StreamMessage]:
        if start_sequence > until_sequence:
            return
        subscription = await self._subscribe(subject, start_sequence)
        try:
            # Nothing left on the server is not nothing to read: what it already pushed waits in the client.
            info = await subscription.consumer_info()
            if info.num_pending == 0 and (info.delivered is None or not info.delivered.consumer_seq):
                return
            while True:
                try:
                    msg = await subscription.next_msg(timeout=_CATCH_UP_WAIT_SECONDS)
                except TimeoutError:
                    if (await subscription.consumer_info()).num_pending == 0:
                        return
                    continue
                message = _message(msg)
                yield message
                if message.sequence >= until_sequence or message.pending == 0:
                    return
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _subscribe(self, subject: str, start_sequence: int) -> JetStreamContext.PushSubscription:
        return await self._js.subscribe(
            subject,
            stream=self._stream,
            ordered_consumer=True,
            idle_heartbeat=IDLE_HEARTBEAT_SECONDS,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(start_sequence, 1)
            ),
        )


def _message(msg: Msg) -> StreamMessage:
    metadata = msg.metadata
    return StreamMessage(
        sequence=int(metadata.sequence.stream),
        subject=msg.subject,
        data=msg.data,
        headers=msg.headers or {},
        pending=int(metadata.num_pending or 0),
    )
