"""WatchInstance's promises, through its RPC with hand-written fakes of the change feed and the stream's
context: the current state first, a new QR code only when it changed, each change of state, the end
after CONNECTED, and a watcher that fell behind cut off with RESOURCE_EXHAUSTED."""

from __future__ import annotations

import asyncio

import pytest

from libs.providers.fake import FakeProviderSessions
from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import Reason, ResourceExhausted
from libs.seedwork.shared_kernel import ConnectionState
from libs.testing.waiting import eventually
from reputation_service.application.connect_instance import (
    ConnectInstance,
    ConnectInstanceHandler,
    DeleteInstanceHandler,
    InstanceConnectionReader,
    LogoutInstanceHandler,
)
from reputation_service.application.observe_connection import ConnectionReport, ObserveConnectionsHandler
from reputation_service.application.onboarding_ports import InstanceChange, WatcherOverflowed
from reputation_service.domain.instance import Instance
from reputation_service.entrypoints.onboarding_rpcs import OnboardingRpcs
from tests.reputation_service.unit.fakes import FakeReputationUnitOfWork
from tests.reputation_service.unit.onboarding_support import registered_instance, sessions_at
from whatlead.common.v1 import common_pb2
from whatlead.reputation.v1 import reputation_pb2

ORG = "org-watch"


class FakeWatch:
    def __init__(self) -> None:
        self.changes: asyncio.Queue[InstanceChange | None] = asyncio.Queue()
        self.closed = False

    async def next_change(self) -> InstanceChange:
        change = await self.changes.get()
        if change is None:
            raise WatcherOverflowed("behind")
        return change

    def close(self) -> None:
        self.closed = True


class FakeChangeFeed:
    def __init__(self) -> None:
        self.watches: list[FakeWatch] = []

    async def watch(self, instance_id: str, *, capacity: int) -> FakeWatch:
        watch = FakeWatch()
        self.watches.append(watch)
        return watch


class FakeStreamContext:
    def __init__(self) -> None:
        self.written: list[reputation_pb2.InstanceConnection] = []

    async def write(self, response: reputation_pb2.WatchInstanceResponse) -> None:
        self.written.append(response.connection)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def uow(clock: FakeClock) -> FakeReputationUnitOfWork:
    return FakeReputationUnitOfWork(clock)


@pytest.fixture
def provider() -> FakeProviderSessions:
    return FakeProviderSessions()


@pytest.fixture
def feed() -> FakeChangeFeed:
    return FakeChangeFeed()


@pytest.fixture
async def instance(uow, clock, provider) -> Instance:
    return registered_instance(uow, clock, organization_id=ORG, ref="watched-1")


def rpcs(uow, clock, provider, feed) -> OnboardingRpcs:
    sessions = sessions_at(provider)
    observe = ObserveConnectionsHandler(clock)
    return OnboardingRpcs(
        connect=ConnectInstanceHandler(lambda: uow, sessions, observe, clock),
        logout=LogoutInstanceHandler(lambda: uow, sessions, observe, clock),
        delete=DeleteInstanceHandler(lambda: uow, sessions, observe, clock),
        reader=InstanceConnectionReader(lambda: uow, sessions, observe, clock),
        changes=feed,
        qr_refresh_seconds=0.01,
        watch_buffer=4,
    )


async def report(uow, clock, instance: Instance, state: ConnectionState) -> None:
    clock.advance(seconds=1)
    async with uow:
        await ObserveConnectionsHandler(clock)(
            uow,
            [
                ConnectionReport(
                    organization_id=ORG,
                    instance_id=instance.id,
                    state=state,
                    reason="",
                    observed_at=clock.now(),
                )
            ],
        )
        await uow.commit()


async def test_the_watch_sends_the_qr_each_new_code_once_then_connected_and_ends(
    uow, clock, provider, feed, instance
):
    service = rpcs(uow, clock, provider, feed)
    await service.connect(ConnectInstance(organization_id=ORG, instance_id=instance.id))
    context = FakeStreamContext()
    request = reputation_pb2.WatchInstanceRequest(organization_id=ORG, instance_id=instance.id)
    watching = asyncio.ensure_future(service.WatchInstance(request, context))

    await eventually(lambda: _written(context, 1))
    first = context.written[0]
    assert first.state == common_pb2.CONNECTION_STATE_QR_REQUIRED
    assert first.qr.code == provider.qr_codes["watched-1"].raw

    rotated = provider.rotate_qr("watched-1")
    await eventually(lambda: _written(context, 2))
    await asyncio.sleep(0.1)  # several refreshes: the same code is not sent again
    assert [c.qr.code for c in context.written] == [first.qr.code, rotated.raw]

    provider.scan("watched-1")
    await report(uow, clock, instance, ConnectionState.CONNECTED)
    connected = await uow.instances.get(ORG, instance.id)
    assert connected is not None
    await feed.watches[0].changes.put(
        InstanceChange(version=connected.version, state=ConnectionState.CONNECTED, changed_at=clock.now())
    )

    await asyncio.wait_for(watching, 5)
    assert context.written[-1].state == common_pb2.CONNECTION_STATE_CONNECTED
    assert len(context.written) == 3 and feed.watches[0].closed


async def test_a_state_that_did_not_last_is_still_sent_and_ends_the_watch(
    uow, clock, provider, feed, instance
):
    service = rpcs(uow, clock, provider, feed)
    await service.connect(ConnectInstance(organization_id=ORG, instance_id=instance.id))
    context = FakeStreamContext()
    request = reputation_pb2.WatchInstanceRequest(organization_id=ORG, instance_id=instance.id)
    watching = asyncio.ensure_future(service.WatchInstance(request, context))
    await eventually(lambda: _written(context, 1))
    stale = await uow.instances.get(ORG, instance.id)
    assert stale is not None
    at = clock.now()

    # Connected, then disconnected before the watcher read the first change.
    await report(uow, clock, instance, ConnectionState.CONNECTED)
    await report(uow, clock, instance, ConnectionState.DISCONNECTED)
    watch = feed.watches[0]
    await watch.changes.put(
        InstanceChange(version=stale.version, state=ConnectionState.QR_REQUIRED, changed_at=at)
    )
    await watch.changes.put(
        InstanceChange(version=stale.version + 1, state=ConnectionState.CONNECTED, changed_at=at)
    )

    await asyncio.wait_for(watching, 5)
    states = [c.state for c in context.written]
    assert states == [common_pb2.CONNECTION_STATE_QR_REQUIRED, common_pb2.CONNECTION_STATE_CONNECTED]


async def test_a_watcher_that_fell_behind_is_cut_off(uow, clock, provider, feed, instance):
    service = rpcs(uow, clock, provider, feed)
    context = FakeStreamContext()
    request = reputation_pb2.WatchInstanceRequest(organization_id=ORG, instance_id=instance.id)
    watching = asyncio.ensure_future(service.WatchInstance(request, context))
    await eventually(lambda: _written(context, 1))

    await feed.watches[0].changes.put(None)  # its buffer overflowed

    with pytest.raises(ResourceExhausted) as cut:  # RESOURCE_EXHAUSTED, through the server's one mapping
        await asyncio.wait_for(watching, 5)
    assert cut.value.reason is Reason.WATCHER_TOO_SLOW and feed.watches[0].closed


async def _written(context: FakeStreamContext, count: int) -> bool:
    return len(context.written) >= count
