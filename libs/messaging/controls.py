"""Ops' kill-switch contract -> the projected `ExecutionControl`: one reading of `ExecutionControlChanged`
(and of the `ExecutionControl` that OpsService lists) for every service that obeys the switch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from google.protobuf.message import DecodeError
from nats.aio.client import Client
from nats.aio.msg import Msg

from libs.messaging import envelope
from libs.rpc.convert import enum_from_proto, from_timestamp
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.shared_kernel import ControlScope
from whatlead.events.v1 import ops_events_pb2
from whatlead.ops.v1 import ops_pb2

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHANGED = ops_events_pb2.ExecutionControlChanged


def control_from_proto(
    control: ops_pb2.ExecutionControl,
    *,
    organization_id: str = "",
    updated_at: datetime | None = None,
) -> ExecutionControl | None:
    """The control, or None when it names no usable scope (an unknown scope, no organization, no scope
    id). `organization_id` and `updated_at` stand in for what the message leaves empty; ORGANIZATION's
    scope id may be left empty too: it is the organization's id."""
    scope = enum_from_proto(ops_pb2.ControlScope, control.scope, ControlScope)
    organization_id = control.organization_id or organization_id
    scope_id = control.scope_id or (organization_id if scope is ControlScope.ORGANIZATION else "")
    if scope is None or not organization_id or not scope_id:
        return None
    return ExecutionControl(
        organization_id=organization_id,
        scope=scope,
        scope_id=scope_id,
        paused=control.status == ops_pb2.CONTROL_STATUS_PAUSED,
        paused_until=from_timestamp(control.paused_until, present=control.HasField("paused_until")),
        version=control.version,
        updated_at=from_timestamp(control.updated_at, present=control.HasField("updated_at"))
        or updated_at
        or _EPOCH,
    )


def control_from_event(event: ops_events_pb2.ExecutionControlChanged) -> ExecutionControl | None:
    """The control an event carries; its envelope's organization and time fill what the control omits."""
    return control_from_proto(
        event.control,
        organization_id=event.meta.organization_id,
        updated_at=from_timestamp(event.meta.occurred_at, present=event.meta.HasField("occurred_at")),
    )


class HeardControls:
    """Every `ExecutionControlChanged` as ops publishes it, handed to `on_control` in this process.

    A plain NATS subscription beside the service's durable consumer: every replica hears every change
    within milliseconds of its publication, not only the replica the durable consumer delivers it to, and
    before any projection has stored it. At most once: a change missed while disconnected still reaches
    the process through its projection, which stays the reference."""

    def __init__(
        self, nats: Client, subject_root: str, on_control: Callable[[ExecutionControl], None]
    ) -> None:
        self._nats = nats
        self._subject = envelope.full_subject(subject_root, envelope.subject_suffix(_CHANGED))
        self._on_control = on_control

    async def run(self, stop: asyncio.Event) -> None:
        subscription = await self._nats.subscribe(self._subject, cb=self._heard)
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):  # closing, or NATS away: nothing left to stop
                await subscription.unsubscribe()

    async def _heard(self, msg: Msg) -> None:
        if (msg.headers or {}).get(envelope.TYPE_HEADER) != _CHANGED.DESCRIPTOR.full_name:
            return
        try:
            control = control_from_event(_CHANGED.FromString(msg.data))
        except DecodeError:
            log.warning("undecodable ExecutionControlChanged heard; the projection will have it")
            return
        if control is not None:
            self._on_control(control)
