"""The live feed of instance changes behind WatchInstance: the process's one fan-out hub
(libs/messaging/fanout.py) on `<root>.reputation.instance.changed`, keyed by instance id. A watcher costs
a registration and a bounded buffer, never a consumer: a thousand watchers cost the broker what one does.
A watcher whose buffer fills is cut off (WatcherOverflowed) rather than buffered for or waited on."""

from __future__ import annotations

import asyncio
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext

from libs.messaging import envelope, fanout
from libs.messaging.fanout import FanoutHub, StreamMessage
from libs.messaging.ordered_source import JetStreamMessageSource
from libs.rpc.convert import enum_from_proto, from_timestamp
from libs.seedwork.errors import InvalidArgument
from libs.seedwork.shared_kernel import ConnectionState
from reputation_service.application.onboarding_ports import InstanceChange, WatcherOverflowed
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import reputation_events_pb2

_CHANGED = envelope.subject_suffix(reputation_events_pb2.InstanceChanged)
_TYPE = reputation_events_pb2.InstanceChanged.DESCRIPTOR.full_name


class _Decoded:
    """Each message is parsed once: the hub asks for its key, then for its item."""

    def __init__(self) -> None:
        self._last: tuple[int, reputation_events_pb2.InstanceChanged | None] = (-1, None)

    def __call__(self, message: StreamMessage) -> reputation_events_pb2.InstanceChanged | None:
        if self._last[0] != message.sequence:
            event = None
            if message.headers.get(envelope.TYPE_HEADER) == _TYPE:
                event = reputation_events_pb2.InstanceChanged.FromString(message.data)
            self._last = (message.sequence, event)
        return self._last[1]


def _time(stamp: Timestamp) -> datetime | None:
    try:
        return from_timestamp(stamp)
    except InvalidArgument:  # a malformed time is no time: the state still counts
        return None


class _Watch:
    def __init__(self, watcher: fanout.Watcher[InstanceChange]) -> None:
        self._watcher = watcher
        self._ready: list[InstanceChange] = []

    async def next_change(self) -> InstanceChange:
        if not self._ready:
            try:
                self._ready = [delivery.item for delivery in await self._watcher.take()]
            except fanout.WatcherOverflowed as overflow:
                raise WatcherOverflowed(self._watcher.key) from overflow
        return self._ready.pop(0)

    def close(self) -> None:
        self._watcher.close()


class JetStreamInstanceChanges:
    """`InstanceChangeFeed`; `run` is the worker that follows the stream."""

    def __init__(self, js: JetStreamContext, subject_root: str) -> None:
        subject = envelope.full_subject(subject_root, _CHANGED)
        decoded = _Decoded()

        def key_of(message: StreamMessage) -> str | None:
            event = decoded(message)
            return event.instance.id if event is not None else None

        def change_of(message: StreamMessage) -> InstanceChange | None:
            event = decoded(message)
            if event is None:
                return None
            instance = event.instance
            return InstanceChange(
                version=instance.version,
                state=enum_from_proto(common_pb2.ConnectionState, instance.connection_state, ConnectionState)
                or ConnectionState.UNKNOWN,
                changed_at=_time(instance.updated_at),
            )

        self._hub: FanoutHub[InstanceChange] = FanoutHub(
            JetStreamMessageSource(
                js, stream=envelope.stream_name(subject_root, "reputation"), subject_filter=subject
            ),
            key_of=key_of,
            decode=change_of,
            subject_of=lambda _key: subject,
            ring_size=1024,
        )

    async def watch(self, instance_id: str, *, capacity: int) -> _Watch:
        return _Watch(await self._hub.watch(instance_id, after=None, capacity=capacity))

    @property
    def watchers(self) -> int:
        return self._hub.watchers

    async def run(self, stop: asyncio.Event) -> None:
        await self._hub.run(stop)
