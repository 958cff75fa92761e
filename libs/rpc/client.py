"""Client side of gRPC: channels where no call can go without a deadline and idempotent calls are retried
as the published service config says, calls that present their caller's credential, and a typed health
check."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, overload

import grpc
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from libs import tracing
from libs.rpc.metrics import ClientMetrics

Request = TypeVar("Request")
Response = TypeVar("Response")


class DefaultDeadline(grpc.aio.UnaryUnaryClientInterceptor):
    """Sets a deadline on every call that did not set its own."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    async def intercept_unary_unary(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Request], Awaitable[grpc.aio.UnaryUnaryCall[Request, Response]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Request,
    ) -> grpc.aio.UnaryUnaryCall[Request, Response]:
        if client_call_details.timeout is None:
            client_call_details = grpc.aio.ClientCallDetails(
                client_call_details.method,
                self._seconds,
                client_call_details.metadata,
                client_call_details.credentials,
                client_call_details.wait_for_ready,
            )
        return await continuation(client_call_details, request)


class AmendingInterceptor(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Changes the details of every unary and server-streaming call the same way (`amend`); give it to a
    channel with `for_every_call`."""

    def amend(self, details: grpc.aio.ClientCallDetails, request: object) -> grpc.aio.ClientCallDetails:
        raise NotImplementedError

    async def intercept_unary_unary(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Request], Awaitable[grpc.aio.UnaryUnaryCall[Request, Response]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Request,
    ) -> grpc.aio.UnaryUnaryCall[Request, Response]:
        return await continuation(self.amend(client_call_details, request), request)

    async def intercept_unary_stream(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Request], Awaitable[grpc.aio.UnaryStreamCall[Request, Response]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Request,
    ) -> grpc.aio.UnaryStreamCall[Request, Response]:
        return await continuation(self.amend(client_call_details, request), request)


class PresentCredential(AmendingInterceptor):
    """Adds `authorization: Bearer <credential>` (an API key or the service credential) to every call,
    streams included."""

    def __init__(self, credential: str) -> None:
        self._metadata = (("authorization", f"Bearer {credential}"),)

    def amend(self, details: grpc.aio.ClientCallDetails, request: object) -> grpc.aio.ClientCallDetails:
        return with_metadata(details, self._metadata)


class StreamSide(grpc.aio.UnaryStreamClientInterceptor):
    """The stream side of an interceptor that handles both kinds of call. grpc.aio files each interceptor
    under its first kind only (unary-unary before unary-stream), so such an interceptor is given to the
    channel twice: itself, and this view of it (`for_every_call`)."""

    def __init__(self, interceptor: grpc.aio.UnaryStreamClientInterceptor) -> None:
        self._interceptor = interceptor

    async def intercept_unary_stream(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Request], Awaitable[grpc.aio.UnaryStreamCall[Request, Response]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Request,
    ) -> AsyncIterator[Response] | grpc.aio.UnaryStreamCall[Request, Response]:
        return await self._interceptor.intercept_unary_stream(continuation, client_call_details, request)


def for_every_call(interceptor: grpc.aio.UnaryStreamClientInterceptor) -> list[grpc.aio.ClientInterceptor]:
    """An interceptor of unary and server-streaming calls (a subclass of both), as grpc.aio applies it to
    both."""
    return [interceptor, StreamSide(interceptor)]


def with_metadata(
    details: grpc.aio.ClientCallDetails, metadata: tuple[tuple[str, str], ...]
) -> grpc.aio.ClientCallDetails:
    """`details` with `metadata` added to what the call already carries."""
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        grpc.aio.Metadata(*(details.metadata or ()), *metadata),
        details.credentials,
        details.wait_for_ready,
    )


# WhatLead's gRPC service config, the one published for every client (docs/clients.md): a deadline per
# method, and retries of UNAVAILABLE on the methods that are safe to repeat.
SERVICE_CONFIG = Path(__file__).resolve().parents[2] / "protos" / "service_config.json"


@cache
def service_config() -> str:
    """The service config as gRPC's `grpc.service_config` channel argument takes it (checked to be JSON)."""
    return json.dumps(json.loads(SERVICE_CONFIG.read_text(encoding="utf-8")), separators=(",", ":"))


# Keepalive pings find a connection that died silently (a pod gone, a NAT entry expired) in 40 s rather than
# at the next call's deadline. The servers accept a ping every 20 s even without calls (libs.rpc.server).
KEEPALIVE_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


def service_config_options() -> list[tuple[str, Any]]:
    """The channel arguments that load the service config (round_robin over every address the name
    resolves to, deadlines, retries) and keep connections alive, for any channel to a WhatLead service,
    grpc.aio or not (the CLI's). Behind a headless Service, `dns:///<service>:<port>` resolves to every pod,
    so calls are balanced per call, not per connection."""
    return [("grpc.service_config", service_config()), ("grpc.enable_retries", 1), *KEEPALIVE_OPTIONS]


def open_channel(
    target: str,
    *,
    default_deadline: float = 5.0,
    credential: str | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """A channel on the published service config. `default_deadline`: of a unary call that sets none (the
    config's timeout stays the most it gets). `credential`: presented on every call (the service
    credential, for a service's calls to another). `options`: further gRPC channel arguments. Its calls are
    counted in the grpc_client_* series (libs.rpc.metrics)."""
    # ClientMetrics first: what it times and counts includes the other interceptors' work.
    interceptors: list[grpc.aio.ClientInterceptor] = [
        *for_every_call(ClientMetrics()),
        DefaultDeadline(default_deadline),
    ]
    interceptors += tracing.grpc_client_interceptors()  # none when tracing is off
    if credential is not None:
        interceptors += for_every_call(PresentCredential(credential))
    return grpc.aio.insecure_channel(
        target, options=[*service_config_options(), *options], interceptors=interceptors
    )


HEALTH_CHECK = "/grpc.health.v1.Health/Check"


@overload
def health_check(
    channel: grpc.aio.Channel,
) -> grpc.aio.UnaryUnaryMultiCallable[HealthCheckRequest, HealthCheckResponse]: ...
@overload
def health_check(
    channel: grpc.Channel,
) -> grpc.UnaryUnaryMultiCallable[HealthCheckRequest, HealthCheckResponse]: ...
def health_check(
    channel: grpc.aio.Channel | grpc.Channel,
) -> (
    grpc.aio.UnaryUnaryMultiCallable[HealthCheckRequest, HealthCheckResponse]
    | grpc.UnaryUnaryMultiCallable[HealthCheckRequest, HealthCheckResponse]
):
    """grpc.health.v1's Check on `channel`, typed: the published stubs of HealthStub declare no methods."""
    return channel.unary_unary(
        HEALTH_CHECK,
        request_serializer=HealthCheckRequest.SerializeToString,
        response_deserializer=HealthCheckResponse.FromString,
    )
