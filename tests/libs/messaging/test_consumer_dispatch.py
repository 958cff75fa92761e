"""How a consumer hands a fetched batch's events to its handlers, in stream order (no servers needed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.wrappers_pb2 import StringValue
from nats.aio.client import Client as NATS

from libs.messaging.consumer import DurableConsumer
from libs.testing.fakes import FakeUnitOfWork


class Calls:
    def __init__(self) -> None:
        self.log: list[tuple[str, list[str]]] = []


class OneByOne:
    def __init__(self, calls: Calls) -> None:
        self._calls = calls

    async def __call__(self, event: Any, uow: Any) -> None:
        self._calls.log.append(("one", [type(event).__name__]))


class Many(OneByOne):
    async def handle_many(self, events: Sequence[Any], uow: Any) -> None:
        self._calls.log.append(("many", [type(event).__name__ for event in events]))


def consumer(handlers: dict[type[Message], Any]) -> DurableConsumer:
    return DurableConsumer(
        service="test",
        js=NATS().jetstream(),  # never connected: dispatching does not fetch
        subject_root="t",
        context="c",
        durable="d",
        handlers=handlers,
        uow_factory=FakeUnitOfWork,
    )


def typed(*events: Message) -> list[tuple[str, Message]]:
    return [(event.DESCRIPTOR.full_name, event) for event in events]


async def test_a_handler_of_several_types_gets_their_consecutive_events_in_one_call() -> None:
    calls = Calls()
    reports, other = Many(calls), OneByOne(calls)
    dispatching = consumer({Timestamp: reports, Duration: reports, StringValue: other})

    await dispatching._dispatch(
        typed(Timestamp(), Duration(), Timestamp(), StringValue(), Timestamp()), FakeUnitOfWork()
    )

    assert calls.log == [
        ("many", ["Timestamp", "Duration", "Timestamp"]),
        ("one", ["StringValue"]),
        ("one", ["Timestamp"]),  # a run of one goes through the per-event call
    ]


async def test_a_handler_that_takes_one_event_gets_each_in_its_own_call() -> None:
    calls = Calls()
    dispatching = consumer({Timestamp: OneByOne(calls)})

    await dispatching._dispatch(typed(Timestamp(), Timestamp()), FakeUnitOfWork())

    assert calls.log == [("one", ["Timestamp"]), ("one", ["Timestamp"])]
