"""The IntentChangeFeed over gRPC: ops' WatchIntents, called with the watcher's own key.

The gateway holds no credential: each call presents the key its watcher presented, and ops authenticates,
authorizes and scopes it to the key's organization (the request leaves organization_id empty for ops to
fill in). Each change becomes the proto's JSON form of WatchIntentsResponse, with the .proto's field names
(as the CLI prints them) and every field present; the call's status becomes a WatchEnded. The position the
stream starts after (ops' initial metadata, `whatlead-position`) comes first, as `{"position": "<N>"}`
without a change, so a watcher cut before its first change resumes from there and loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
from google.protobuf import json_format

from gateway.application.ports import ChangeFrame, WatchEnd, WatchEnded, WatchIntents
from libs.rpc.errors import field_violations
from libs.rpc.stream_start import start_position
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

if TYPE_CHECKING:
    from whatlead.ops.v1.ops_pb2_grpc import OpsServiceAsyncStub

ENDS = {
    grpc.StatusCode.UNAUTHENTICATED: WatchEnd.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: WatchEnd.FORBIDDEN,
    grpc.StatusCode.INVALID_ARGUMENT: WatchEnd.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE: WatchEnd.POSITION_TOO_OLD,
    grpc.StatusCode.RESOURCE_EXHAUSTED: WatchEnd.TOO_SLOW,
    grpc.StatusCode.UNAVAILABLE: WatchEnd.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: WatchEnd.ENDED,  # the stream's lifetime, our own deadline
}


def change_json(response: ops_pb2.WatchIntentsResponse) -> str:
    fields = json_format.MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps(fields, separators=(",", ":"))


def watch_ended(error: grpc.aio.AioRpcError) -> WatchEnded:
    """The end a failed call means, with what may be shown: the fields of an INVALID_ARGUMENT, nothing of
    an unexpected status."""
    end = ENDS.get(error.code(), WatchEnd.INTERNAL)
    if end is WatchEnd.INVALID_ARGUMENT:
        violations = field_violations(error)
        detail = "; ".join(f"{name}: {why}" for name, why in violations.items()) or (error.details() or "")
        return WatchEnded(end, detail)
    if end in (WatchEnd.FORBIDDEN, WatchEnd.POSITION_TOO_OLD):
        return WatchEnded(end, error.details() or "")
    return WatchEnded(end)


class GrpcIntentChangeFeed:
    def __init__(self, channel: grpc.aio.Channel, *, max_stream_seconds: float) -> None:
        self._stub: OpsServiceAsyncStub = ops_pb2_grpc.OpsServiceStub(channel)
        self._max_stream_seconds = max_stream_seconds

    async def watch(self, request: WatchIntents) -> AsyncIterator[ChangeFrame]:
        call = self._stub.WatchIntents(
            ops_pb2.WatchIntentsRequest(
                intent_id=request.intent_id,
                campaign_id=request.campaign_id,
                after_position=request.after_position,
            ),
            metadata=(("authorization", f"Bearer {request.credential}"),),
            timeout=self._max_stream_seconds,
        )
        try:
            start = start_position(await call.initial_metadata())
            if start:
                yield ChangeFrame(start, json.dumps({"position": start}, separators=(",", ":")))
            async for response in call:
                yield ChangeFrame(response.position, change_json(response))
        except grpc.aio.AioRpcError as error:
            raise watch_ended(error) from None
        finally:
            call.cancel()  # the watcher left or was cut off: ops stops reading for it at once
