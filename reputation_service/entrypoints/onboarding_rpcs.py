"""The onboarding RPCs of ReputationService (ConnectInstance, LogoutInstance, DeleteInstance and the
WatchInstance stream): proto -> command -> use case -> proto. `ReputationServicer` delegates to them.

WatchInstance (ADR 0049) registers with the process's feed of instance changes before it reads the
current state, so no change falls between the two; it then sends each change of state and, while a QR
code is required, each new code (asked from the provider every `qr_refresh_seconds`, sent only when it
changed), and ends OK once CONNECTED or BANNED was sent. A watcher that falls behind its buffer is cut
off with RESOURCE_EXHAUSTED (reason WATCHER_TOO_SLOW): it watches again, from the current state."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from typing import Protocol

from libs.seedwork.errors import Reason, ResourceExhausted
from libs.seedwork.shared_kernel import ConnectionState
from reputation_service.application.connect_instance import (
    FINAL_STATES,
    ConnectInstance,
    ConnectInstanceHandler,
    DeleteInstanceHandler,
    InstanceAtProvider,
    InstanceConnection,
    InstanceConnectionReader,
    LogoutInstanceHandler,
)
from reputation_service.application.onboarding_ports import (
    InstanceChange,
    InstanceChangeFeed,
    QrImage,
    WatcherOverflowed,
)
from reputation_service.infrastructure import metrics
from reputation_service.infrastructure.proto_mapping import connection_to_proto, instance_to_proto
from whatlead.reputation.v1 import reputation_pb2

SLOW_WATCHER = "the watcher fell behind the instance's changes; watch again"


class StreamContext(Protocol):
    """What the stream uses of grpc.aio's ServicerContext."""

    async def write(self, message: reputation_pb2.WatchInstanceResponse) -> None: ...


@dataclass(frozen=True, kw_only=True)
class OnboardingRpcs:
    connect: ConnectInstanceHandler
    logout: LogoutInstanceHandler
    delete: DeleteInstanceHandler
    reader: InstanceConnectionReader
    changes: InstanceChangeFeed
    qr_refresh_seconds: float
    watch_buffer: int

    async def ConnectInstance(
        self, request: reputation_pb2.ConnectInstanceRequest
    ) -> reputation_pb2.ConnectInstanceResponse:
        connection = await self.connect(
            ConnectInstance(
                organization_id=request.organization_id,
                instance_id=request.instance_id,
                pairing_phone=request.pairing_phone,
            )
        )
        return reputation_pb2.ConnectInstanceResponse(
            instance=instance_to_proto(connection.instance), connection=connection_to_proto(connection)
        )

    async def LogoutInstance(
        self, request: reputation_pb2.LogoutInstanceRequest
    ) -> reputation_pb2.LogoutInstanceResponse:
        instance = await self.logout(_at_provider(request))
        return reputation_pb2.LogoutInstanceResponse(instance=instance_to_proto(instance))

    async def DeleteInstance(
        self, request: reputation_pb2.DeleteInstanceRequest
    ) -> reputation_pb2.DeleteInstanceResponse:
        instance = await self.delete(_at_provider(request))
        return reputation_pb2.DeleteInstanceResponse(instance=instance_to_proto(instance))

    async def WatchInstance(
        self, request: reputation_pb2.WatchInstanceRequest, context: StreamContext
    ) -> None:
        watch = await self.changes.watch(request.instance_id, capacity=self.watch_buffer)
        metrics.WATCHERS.inc()
        next_change: asyncio.Future[InstanceChange] | None = None
        try:
            connection = await self.reader.current(_at_provider(request))
            await context.write(_response(connection))
            sent = connection
            while sent.state not in FINAL_STATES:
                if next_change is None:
                    next_change = asyncio.ensure_future(watch.next_change())
                waiting_for_scan = sent.state is ConnectionState.QR_REQUIRED
                done, _ = await asyncio.wait(
                    {next_change}, timeout=self.qr_refresh_seconds if waiting_for_scan else None
                )
                if next_change in done:
                    change = next_change.result()  # WatcherOverflowed: cut off below
                    next_change = None
                    if change.version <= sent.instance.version:
                        continue  # already in what was sent (it came between registering and reading)
                    connection = await self.reader.at_change(sent.instance, change)
                else:
                    connection = replace(sent, qr=await self._fresh_qr(sent))
                if _differs(connection, sent):
                    await context.write(_response(connection))
                    sent = connection
        except WatcherOverflowed:
            raise ResourceExhausted(
                SLOW_WATCHER, reason=Reason.WATCHER_TOO_SLOW, metadata={"instance_id": request.instance_id}
            ) from None
        finally:
            if next_change is not None:
                next_change.cancel()
                with contextlib.suppress(asyncio.CancelledError, WatcherOverflowed):
                    await next_change
            watch.close()
            metrics.WATCHERS.dec()

    async def _fresh_qr(self, sent: InstanceConnection) -> QrImage | None:
        """The code the provider shows now; the one sent when the provider cannot say (asked again at the
        next refresh)."""
        return await self.reader.qr(sent.instance) or sent.qr


def _differs(now: InstanceConnection, sent: InstanceConnection) -> bool:
    """A change of state, or a new QR code while one is required."""
    if now.state is not sent.state:
        return True
    return now.state is ConnectionState.QR_REQUIRED and now.qr is not None and now.qr != sent.qr


def _response(connection: InstanceConnection) -> reputation_pb2.WatchInstanceResponse:
    return reputation_pb2.WatchInstanceResponse(connection=connection_to_proto(connection))


def _at_provider(
    request: reputation_pb2.LogoutInstanceRequest
    | reputation_pb2.DeleteInstanceRequest
    | reputation_pb2.WatchInstanceRequest,
) -> InstanceAtProvider:
    return InstanceAtProvider(organization_id=request.organization_id, instance_id=request.instance_id)
