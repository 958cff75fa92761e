"""gRPC's standard Prometheus series, with go-grpc-prometheus's names and labels so stock dashboards and
alerts read them: `grpc_server_*` recorded by `ServerMetrics` (a server interceptor) and `grpc_client_*`
by `ClientMetrics` (a channel interceptor, libs.rpc.client.open_channel). The series are py-grpc-prometheus's
definitions; its interceptors are for grpc's thread-pool API only, so these two feed them under grpc.aio
(ADR 0051). `grpc_type` takes go-grpc-prometheus's values (unary, server_stream, ...)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
from prometheus_client import REGISTRY, Counter, Histogram
from py_grpc_prometheus import client_metrics, server_metrics

Request = TypeVar("Request")
Response = TypeVar("Response")

# registry=None: built unregistered, so only the series fed here are exposed (not the library's legacy ones).
_SERVER = server_metrics.init_metrics(None)
SERVER_STARTED: Counter = _SERVER["grpc_server_started_counter"]
SERVER_HANDLED: Counter = server_metrics.get_grpc_server_handled_counter(False, None)
SERVER_MSG_RECEIVED: Counter = _SERVER["grpc_server_stream_msg_received"]
SERVER_MSG_SENT: Counter = _SERVER["grpc_server_stream_msg_sent"]
SERVER_HANDLING: Histogram = _SERVER["grpc_server_handled_histogram"]
_CLIENT = client_metrics.init_metrics(None)
CLIENT_STARTED: Counter = _CLIENT["grpc_client_started_counter"]
CLIENT_HANDLED: Counter = _CLIENT["grpc_client_handled_counter"]
CLIENT_MSG_RECEIVED: Counter = _CLIENT["grpc_client_stream_msg_received"]
CLIENT_MSG_SENT: Counter = _CLIENT["grpc_client_stream_msg_sent"]
CLIENT_HANDLING: Histogram = _CLIENT["grpc_client_handled_histogram"]
for _series in (
    SERVER_STARTED, SERVER_HANDLED, SERVER_MSG_RECEIVED, SERVER_MSG_SENT, SERVER_HANDLING,
    CLIENT_STARTED, CLIENT_HANDLED, CLIENT_MSG_RECEIVED, CLIENT_MSG_SENT, CLIENT_HANDLING,
):  # fmt: skip
    REGISTRY.register(_series)

UNARY = "unary"
SERVER_STREAM = "server_stream"
CLIENT_STREAM = "client_stream"
BIDI_STREAM = "bidi_stream"


def grpc_type(request_streaming: bool, response_streaming: bool) -> str:
    if request_streaming:
        return BIDI_STREAM if response_streaming else CLIENT_STREAM
    return SERVER_STREAM if response_streaming else UNARY


def split_method(method: str | bytes) -> tuple[str, str]:
    """`/whatlead.gate.v1.GateService/SubmitIntent` -> (`whatlead.gate.v1.GateService`, `SubmitIntent`)."""
    text = method.decode() if isinstance(method, bytes) else method
    service, _, name = text.lstrip("/").partition("/")
    return service, name


@dataclass(frozen=True, slots=True)
class _Side:
    """The series of one side (server or client) for one method, labels bound once."""

    started: Any
    received: Any
    sent: Any
    handling: Any
    handled: Callable[[grpc.StatusCode], Any]


def _bind(
    started: Counter,
    received: Counter,
    sent: Counter,
    handling: Histogram,
    handled: Counter,
    kind: str,
    method: str | bytes,
) -> _Side:
    service, name = split_method(method)
    labels = (kind, service, name)
    children: dict[grpc.StatusCode, Any] = {}

    def handled_with(code: grpc.StatusCode) -> Any:
        child = children.get(code)
        if child is None:
            child = children[code] = handled.labels(kind, service, name, code.name)
        return child

    return _Side(
        started.labels(*labels),
        received.labels(*labels),
        sent.labels(*labels),
        handling.labels(*labels),
        handled_with,
    )


# ---- server --------------------------------------------------------------------------------------------


class ServerMetrics(grpc.aio.ServerInterceptor):
    """Counts every call the server takes: started, each message received and sent, how long it took and
    the status it ended with. Given first to the server, so what it records is the final word of the
    interceptors behind it: the status a domain error was mapped to, UNAUTHENTICATED for a refused key,
    CANCELLED when the client left a stream."""

    def __init__(self) -> None:
        # Per method: the handler given by the interceptors behind, and its counted version.
        self._counted: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Request, Response] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Request, Response] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._counted.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        counted = _count_server_calls(method, handler)
        if counted is not handler:
            self._counted[method] = (handler, counted)
        return counted


def _count_server_calls(
    method: str, handler: grpc.RpcMethodHandler[Request, Response]
) -> grpc.RpcMethodHandler[Request, Response]:
    if handler.unary_unary is None and handler.unary_stream is None:
        return handler  # client and bidi streams: none of ours (reflection's), left as they are
    streaming = handler.unary_stream is not None
    side = _bind(
        SERVER_STARTED,
        SERVER_MSG_RECEIVED,
        SERVER_MSG_SENT,
        SERVER_HANDLING,
        SERVER_HANDLED,
        grpc_type(False, streaming),
        method,
    )
    deserialize = handler.request_deserializer
    serialize = handler.response_serializer

    def received(raw: bytes) -> Any:
        side.received.inc()
        return deserialize(raw) if deserialize is not None else raw

    def sent(response: Any) -> bytes:
        side.sent.inc()  # also what a stream writes (grpc.aio serializes each `context.write`)
        return serialize(response) if serialize is not None else cast(bytes, response)

    behaviour = cast(
        "Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]",
        handler.unary_stream if streaming else handler.unary_unary,
    )

    async def counted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        side.started.inc()
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await behaviour(request, context)
        except asyncio.CancelledError:
            # The client left, or its deadline passed (what it then hears, and go-grpc-prometheus records).
            remaining = context.time_remaining()
            expired = remaining is not None and remaining <= 0
            code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
            raise
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except BaseException:
            code = grpc.StatusCode.UNKNOWN  # what grpc answers for an exception nobody mapped
            raise
        finally:
            side.handling.observe(time.perf_counter() - started)
            side.handled(_status(code)).inc()

    factory = grpc.unary_stream_rpc_method_handler if streaming else grpc.unary_unary_rpc_method_handler
    return cast(
        "grpc.RpcMethodHandler[Request, Response]",
        factory(counted, request_deserializer=received, response_serializer=sent),
    )


_CODES_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


def _status(code: grpc.StatusCode | int) -> grpc.StatusCode:
    """grpc.aio's `context.code()` may give the number rather than the enum."""
    return code if isinstance(code, grpc.StatusCode) else _CODES_BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)


# ---- client --------------------------------------------------------------------------------------------


class ClientMetrics(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Counts every unary and server-streaming call of a channel (give it with `for_every_call`): started,
    the request sent, each response received, how long until it ended and the status it ended with. The
    call goes back to the caller as grpc made it (a stream keeps `read()`, its metadata and `cancel()`)."""

    def __init__(self) -> None:
        self._sides: dict[tuple[str, str | bytes], _Side] = {}
        self._recording: set[asyncio.Task[None]] = set()  # referenced until done (asyncio keeps weak ones)

    def _side(self, kind: str, method: str | bytes) -> _Side:
        side = self._sides.get((kind, method))
        if side is None:
            side = self._sides[(kind, method)] = _bind(
                CLIENT_STARTED,
                CLIENT_MSG_RECEIVED,
                CLIENT_MSG_SENT,
                CLIENT_HANDLING,
                CLIENT_HANDLED,
                kind,
                method,
            )
        return side

    async def intercept_unary_unary(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Request], Awaitable[grpc.aio.UnaryUnaryCall[Request, Response]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Request,
    ) -> grpc.aio.UnaryUnaryCall[Request, Response]:
        side = self._start(UNARY, client_call_details)
        call = await continuation(client_call_details, request)
        self._when_done(call, side, time.perf_counter(), unary=True)
        return call

    async def intercept_unary_stream(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Request], Awaitable[grpc.aio.UnaryStreamCall[Request, Response]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Request,
    ) -> grpc.aio.UnaryStreamCall[Request, Response]:
        side = self._start(SERVER_STREAM, client_call_details)
        call = await continuation(client_call_details, request)
        self._when_done(call, side, time.perf_counter(), unary=False)
        return _CountedStream(call, side.received)

    def _start(self, kind: str, details: grpc.aio.ClientCallDetails) -> _Side:
        side = self._side(kind, details.method)
        side.started.inc()
        side.sent.inc()
        return side

    def _when_done(self, call: grpc.aio.Call, side: _Side, started: float, *, unary: bool) -> None:
        def done(finished: grpc.aio.Call) -> None:
            # The call has ended: its code is known; asking for it is a coroutine all the same.
            task = asyncio.get_running_loop().create_task(record(finished))
            self._recording.add(task)
            task.add_done_callback(self._recording.discard)

        async def record(finished: grpc.aio.Call) -> None:
            code = await finished.code()
            side.handling.observe(time.perf_counter() - started)
            side.handled(code).inc()
            if unary and code is grpc.StatusCode.OK:
                side.received.inc()

        call.add_done_callback(done)


class _CountedStream(grpc.aio.UnaryStreamCall):  # type: ignore[type-arg]
    """A server-streaming call as grpc made it, counting each response read (iterated or `read()`)."""

    def __init__(self, call: grpc.aio.UnaryStreamCall[Any, Any], received: Any) -> None:
        self._call = call
        self._received = received

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._responses()

    async def _responses(self) -> AsyncIterator[Any]:
        async for response in self._call:
            self._received.inc()
            yield response

    async def read(self) -> Any:
        response = await self._call.read()
        if response is not grpc.aio.EOF:
            self._received.inc()
        return response

    def cancelled(self) -> bool:
        return self._call.cancelled()

    def done(self) -> bool:
        return self._call.done()

    def time_remaining(self) -> float | None:
        return self._call.time_remaining()

    def cancel(self) -> bool:
        return self._call.cancel()

    def add_done_callback(self, callback: Any) -> None:
        self._call.add_done_callback(lambda _call: callback(self))

    async def initial_metadata(self) -> Any:
        return await self._call.initial_metadata()

    async def trailing_metadata(self) -> Any:
        return await self._call.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        return await self._call.code()

    async def details(self) -> str:
        return await self._call.details()

    async def wait_for_connection(self) -> None:
        await self._call.wait_for_connection()
