"""A grpc.aio server with what every WhatLead process serves: health, reflection, metrics, request
validation, error mapping, and a deliberate limit on the size of a request."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

import grpc
from google.rpc.code_pb2 import Code
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from libs import tracing
from libs.rpc.access import NOBODY, MethodRule, service_rules
from libs.rpc.auth import Authenticator
from libs.rpc.errors import STORE_RETRY_DELAY, status_for, status_of
from libs.rpc.metrics import ServerMetrics
from libs.rpc.principal import reset_principal, set_principal
from libs.rpc.reflection import enable_reflection
from libs.rpc.validation import UndecodableRequest, refuse_invalid, tolerant
from libs.seedwork.errors import DomainError, PermissionDenied, Reason, Unauthenticated
from libs.stores import StoreOutages

log = logging.getLogger(__name__)

# Clients ping every 30 s, with or without calls (libs.rpc.client.KEEPALIVE_OPTIONS): accept that rather
# than answer GOAWAY "too many pings". A connection is asked to go away after 5 minutes (its open streams
# finish undisturbed), so clients resolve the Service again and spread over pods that scaled out since.
SERVER_CONNECTION_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 20_000),
    ("grpc.max_connection_age_ms", 300_000),
]


Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer")
# What grpc.aio calls for a unary method. Its stubs type a handler's behaviour as synchronous (grpc's
# thread-pool server); under grpc.aio the behaviour is this coroutine function.
AsyncUnaryBehaviour = Callable[[Request, grpc.aio.ServicerContext[Request, Response]], Awaitable[Response]]
# A server-streaming behaviour: a coroutine function that writes its responses with `context.write`.
AsyncStreamBehaviour = Callable[[Request, grpc.aio.ServicerContext[Request, Response]], Awaitable[None]]


# Given an unexpected exception: the message of an UNAVAILABLE answer when it is a store outage, else None
# (StoreOutages.unavailable, ADR 0009).
OutageCheck = Callable[[Exception], str | None]


def _no_outages(exc: Exception) -> str | None:
    return None


class _OrganizationScoped(Protocol):
    """A request of an RPC whose descriptor has `organization_id` (MethodRule.scoped)."""

    organization_id: str


# Refusals of authentication and authorization: the same words whatever the reason, so they help no guess.
UNAUTHENTICATED = "a valid API key or service credential is required (authorization: Bearer <key>)"
PERMISSION_DENIED = "the caller may not do this"
FOREIGN_ORGANIZATION = "the caller may not act on this organization"


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates and authorizes every call of the server's own services (docs/security.md), refuses
    requests that break their contract before any use case runs, maps domain errors to status codes (never
    leaking internals). Health and reflection are not ours: left open. Its calls are counted by
    libs.rpc.metrics.ServerMetrics, which stands before it and records the status it maps to."""

    def __init__(
        self,
        outage: OutageCheck = _no_outages,
        *,
        authenticator: Authenticator | None = None,
        services: Iterable[str] = (),
    ) -> None:
        """`services`: the server's own services (full names); the access rule of each of their methods
        comes from its descriptor, and a method without one admits nobody. `authenticator` None: no call
        is authenticated (see GrpcServer)."""
        # One wrapped handler per method, built on its first call: the hot path reuses it.
        self._guarded: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        self._outage = outage
        self._authenticator = authenticator
        self._own_services = tuple(f"/{name}/" for name in services)
        self._rules: dict[str, MethodRule] = {}
        for name in services:
            self._rules.update(service_rules(name))

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Request, Response] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Request, Response] | None:
        method = handler_call_details.method
        guarded = self._guarded.get(method)
        if guarded is not None:
            return guarded
        handler = await continuation(handler_call_details)
        ours = method.startswith(self._own_services)
        if handler is None or (handler.unary_unary is None and handler.unary_stream is None):
            # Unary and server-streaming methods are guarded; one of ours of another kind would go unchecked,
            # so it is not served.
            return None if ours and self._authenticator is not None else handler
        authenticator = self._authenticator
        if authenticator is None or not ours:
            guarded = self._guard(method, handler, self._outage)
        else:
            rule = self._rules.get(method, NOBODY)
            guarded = self._guard(method, handler, self._outage, authenticator, rule)
        self._guarded[method] = guarded
        return guarded

    @staticmethod
    def _guard(
        method: str,
        handler: grpc.RpcMethodHandler[Request, Response],
        outage: OutageCheck,
        authenticator: Authenticator | None = None,
        rule: MethodRule = NOBODY,
    ) -> grpc.RpcMethodHandler[Request, Response]:
        if handler.unary_stream is not None:
            return _guard_stream(method, handler, outage, authenticator, rule)
        inner = cast("AsyncUnaryBehaviour[Request, Response]", handler.unary_unary)
        admit = _admission(authenticator, rule)

        async def guarded(request: Request, context: grpc.aio.ServicerContext[Request, Response]) -> Response:
            principal_token = None
            try:
                principal_token = await admit(request, context)
                refuse_invalid(method, request)
                return await inner(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                code, details, trailing = _failure_status(exc, method, outage)
                await context.abort(code, details, trailing)
            finally:
                if principal_token is not None:
                    reset_principal(principal_token)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            # A body that does not decode reaches `guarded` as an UndecodableRequest, not as gRPC's UNKNOWN.
            request_deserializer=tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )


# Admits a call (authentication, authorization, organization scope) or refuses it with a domain error;
# returns the token that resets the principal it set, None when no call is authenticated.
Admission = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[object | None]]


def _admission(authenticator: Authenticator | None, rule: MethodRule) -> Admission:
    authenticate = authenticator.authenticate if authenticator is not None else None
    admits = rule.admits
    scoped = rule.scoped

    async def admit(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> object | None:
        if authenticate is None:
            return None
        principal = authenticate(context.invocation_metadata())
        if principal is None:
            raise Unauthenticated(UNAUTHENTICATED)
        if not admits(principal):
            raise PermissionDenied(PERMISSION_DENIED)
        # An organization's key acts on its own organization: named, or filled in when left out.
        if scoped and not principal.is_service and not isinstance(request, UndecodableRequest):
            scoped_request = cast("_OrganizationScoped", request)
            if not scoped_request.organization_id:
                scoped_request.organization_id = principal.organization_id
            elif scoped_request.organization_id != principal.organization_id:
                raise PermissionDenied(FOREIGN_ORGANIZATION, reason=Reason.FOREIGN_ORGANIZATION)
        return set_principal(principal)

    return admit


def _failure_status(exc: Exception, method: str, outage: OutageCheck) -> tuple[grpc.StatusCode, str, Any]:
    """What a call that raised `exc` ends with: a domain error by its mapping, a store outage UNAVAILABLE,
    a method declared but not built UNIMPLEMENTED, anything else INTERNAL without a word of what it was
    (logged here). Each with its ErrorInfo (libs.rpc.errors)."""
    if isinstance(exc, DomainError):
        status = status_for(exc)
    elif (unavailable := outage(exc)) is not None:  # logged once per outage, not per call
        status = status_of(
            Code.UNAVAILABLE, unavailable, Reason.STORE_UNAVAILABLE, retry_delay=STORE_RETRY_DELAY
        )
    elif isinstance(exc, NotImplementedError):  # what a generated servicer's method does when not overridden
        status = status_of(Code.UNIMPLEMENTED, f"{method} is not implemented yet", Reason.UNIMPLEMENTED)
    else:
        log.exception("unhandled error in rpc", extra={"method": method})
        status = status_of(Code.INTERNAL, "internal error", Reason.INTERNAL)
    return status.code, status.details, status.trailing_metadata


def _guard_stream(
    method: str,
    handler: grpc.RpcMethodHandler[Request, Response],
    outage: OutageCheck,
    authenticator: Authenticator | None,
    rule: MethodRule,
) -> grpc.RpcMethodHandler[Request, Response]:
    """The same guard for a server-streaming method, whose behaviour writes with `context.write` (nothing
    per message passes through here). It may write bytes already serialized: a stream fanning one event
    out to many watchers encodes it once."""
    inner = cast("AsyncStreamBehaviour[Request, Response]", handler.unary_stream)
    admit = _admission(authenticator, rule)
    serialize = handler.response_serializer

    async def guarded(request: Request, context: grpc.aio.ServicerContext[Request, Response]) -> None:
        principal_token = None
        try:
            principal_token = await admit(request, context)
            refuse_invalid(method, request)
            await inner(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            code, details, trailing = _failure_status(exc, method, outage)
            await context.abort(code, details, trailing)
        finally:
            if principal_token is not None:
                reset_principal(principal_token)

    def serialize_once(response: Response | bytes) -> bytes:
        if isinstance(response, bytes):
            return response
        return serialize(response) if serialize is not None else cast(bytes, response)

    return grpc.unary_stream_rpc_method_handler(
        guarded,
        request_deserializer=tolerant(handler.request_deserializer),
        response_serializer=serialize_once,
    )


@dataclass(frozen=True)
class ServicerBinding(Generic[Servicer]):
    """A servicer instance, the generated `add_XServicer_to_server` function and the full service name."""

    servicer: Servicer
    add_to_server: Callable[[Servicer, grpc.aio.Server], None]
    service_name: str

    def add_to(self, server: grpc.aio.Server) -> None:
        self.add_to_server(self.servicer, server)


# gRPC's own default; services pass their own, smaller limit (libs.config.ServiceSettings).
DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 4 * 1024 * 1024

# A health name that stays SERVING while the process serves, store outages or not: for liveness probes,
# which must not restart pods for an outage a restart cannot cure (ADR 0009).
LIVENESS = "liveness"

# Set by a launcher that runs several processes of one service on one port (gate_service/__main__.py).
REUSE_PORT_ENV = "WHATLEAD_GRPC_REUSE_PORT"


class GrpcServer:
    def __init__(
        self,
        bindings: Iterable[ServicerBinding[Any]],
        *,
        host: str,
        port: int,
        reuse_port: bool | None = None,
        acceptors: int = 1,
        max_receive_message_bytes: int = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
        outages: StoreOutages | None = None,
        authenticator: Authenticator | None,
    ) -> None:
        """`reuse_port`: share the port with sibling processes (SO_REUSEPORT; the kernel spreads new
        connections among them). Off unless asked, so a second server on a taken port fails loudly.

        `acceptors`: grpc.aio servers in this process on the same port. One grpc.aio server takes new
        calls one at a time from its own loop task, so under load most calls wait in gRPC's queue rather
        than in the handlers, and the handlers' batching (group commit, coalesced Redis calls) starves;
        each further server adds an acceptor (they share the port with SO_REUSEPORT, connections spread
        among them). ADR 0011.

        `max_receive_message_bytes`: the largest request body accepted; a larger one is refused with
        RESOURCE_EXHAUSTED before it is read into memory. Each service sizes it to its largest legitimate
        request (its settings, docs/contracts.md).

        `authenticator`: who calls (docs/security.md); every call of the bound services is authenticated and
        authorized by its method's access option. None only for benches that measure what that costs, and
        tests of the server's other duties.

        `outages`: the service's stores. A call failing on a store outage is answered UNAVAILABLE, and
        health is NOT_SERVING while a store the service cannot work without is down (ADR 0009)."""
        if reuse_port is None:
            reuse_port = os.environ.get(REUSE_PORT_ENV) == "1"
        self._bindings = list(bindings)
        self._host = host
        self._port = port
        self._shared_with_siblings = reuse_port
        options = [
            ("grpc.so_reuseport", int(reuse_port or acceptors > 1)),
            ("grpc.max_receive_message_length", max_receive_message_bytes),
            *SERVER_CONNECTION_OPTIONS,
        ]
        outage = outages.unavailable if outages is not None else _no_outages
        services = [binding.service_name for binding in self._bindings]
        self._servers = [
            grpc.aio.server(
                # ServerMetrics first: it counts the status ServiceInterceptor ends each call with.
                interceptors=[
                    ServerMetrics(),
                    *tracing.grpc_server_interceptors(services),  # the span covers the guard
                    ServiceInterceptor(outage, authenticator=authenticator, services=services),
                ],
                options=options,
            )
            for _ in range(acceptors)
        ]
        self._health = HealthServicer()
        self._outages = outages
        self.port = 0

    async def start(self) -> int:
        if len(self._servers) > 1 and not self._shared_with_siblings and self._port:
            _fail_if_taken(self._host, self._port)  # SO_REUSEPORT would otherwise share it silently
        names = [b.service_name for b in self._bindings]
        for server in self._servers:
            for binding in self._bindings:
                binding.add_to(server)
            health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
            enable_reflection([*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name], server)
            # The first one binds (port 0: a free port); the others join the port it got.
            self.port = server.add_insecure_port(f"{self._host}:{self.port or self._port}")
            await server.start()
        await self._health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await self.set_serving(True)
        if self._outages is not None:
            self._outages.listen(self.set_serving)
        return self.port

    async def set_serving(self, serving: bool) -> None:
        """The health of the whole server ("") and of each of its services (ignored once stopping)."""
        serving_status = health_pb2.HealthCheckResponse
        status = serving_status.SERVING if serving else serving_status.NOT_SERVING
        for name in ["", *(binding.service_name for binding in self._bindings)]:
            await self._health.set(name, status)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING so load balancers move away, then let in-flight calls finish."""
        await self._health.enter_graceful_shutdown()
        await asyncio.gather(*(server.stop(grace) for server in self._servers))


def _fail_if_taken(host: str, port: int) -> None:
    """Bind once without SO_REUSEPORT: fails if any process (sharing or not) already listens there."""
    with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC's own: TIME_WAIT is no owner
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise OSError(f"gRPC port {host}:{port} is already in use") from exc
