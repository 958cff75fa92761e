"""The gateway's HTTP surface (Starlette): webhooks in, health and metrics out, live intent changes out
(the /v1/realtime WebSocket, entrypoints/realtime.py).

`POST /webhooks/{provider}/{instance_id}` translates the request into a ReceiveWebhook and the outcome
into a status, and nothing else. Every refusal is an RFC 9457 problem (application/problem+json) that
names no exception, secret or body: 401 signature missing or wrong, 400 malformed, 404 unknown provider
or instance id not a UUID, 413 body over the limit (refused while reading, never buffered whole), 415
content type the provider does not send, 503 when the events could not be stored (the provider retries).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from pathlib import Path

from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from gateway.application.ports import MalformedWebhook, SignatureRejected
from gateway.application.receive_webhook import ReceiveWebhook, ReceiveWebhookHandler, WebhookReceived
from gateway.entrypoints.problems import PROBLEM as PROBLEM  # what the tests and tools know it by
from gateway.entrypoints.problems import problem
from gateway.entrypoints.realtime import PATH as REALTIME
from gateway.entrypoints.realtime import RealtimeEndpoint, upgrade_required
from libs import tracing
from libs.seedwork.ids import is_valid_id
from libs.seedwork.shared_kernel import Provider
from libs.stores import StoreOutages, outage_of

log = logging.getLogger(__name__)

# The simulator speaks WAHA; its events keep its own name so its instances are told apart.
PROVIDERS = {
    "evolution": Provider.EVOLUTION,
    "waha": Provider.WAHA,
    "wuzapi": Provider.WUZAPI,
    "turbozap": Provider.TURBOZAP,
    "simulator": Provider.SIMULATOR,
}
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"  # wuzapi's default webhook format
CONTENT_TYPES = {provider: frozenset({JSON}) for provider in Provider} | {
    Provider.WUZAPI: frozenset({JSON, FORM})
}
NO_EVENT = "none"  # the kind label of a webhook that carried no canonical event (or was refused)
MANY_KINDS = "mixed"
# The routes below, described for providers and tools (a test keeps the two in step).
OPENAPI_DOCUMENT = Path(__file__).resolve().parents[1] / "openapi.json"

WEBHOOKS = Counter(
    "whatlead_gateway_webhooks_total",
    "Webhooks answered, by provider, canonical kind of their events and HTTP status",
    ["provider", "kind", "status"],
)
VERIFICATION_FAILURES = Counter(
    "whatlead_gateway_verification_failures_total",
    "Webhooks refused 401, by provider and cause (missing, mismatch, expired, malformed, algorithm)",
    ["provider", "cause"],
)
IGNORED_EVENTS = Counter(
    "whatlead_gateway_ignored_events_total",
    "Provider event types WhatLead does not use: accepted with 2xx, not published",
    ["provider", "type"],
)


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, headers: Mapping[str, str], limit: int) -> bytes:
    """The body, refused as soon as it is known to be over `limit`: by its declared length, else while it
    streams in (chunked), so no more than `limit` bytes are ever held."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").partition(";")[0].strip().lower()


def kind_label(received: WebhookReceived) -> str:
    kinds = {event.kind.value for event in received.events}
    return kinds.pop() if len(kinds) == 1 else MANY_KINDS if kinds else NO_EVENT


def _span_attributes(provider: str, instance_id: str) -> dict[str, str]:
    # The path's instance id only once it is a UUID: anyone may post anything to any path.
    attributes = {"whatlead.provider": provider}
    if is_valid_id(instance_id):
        attributes["whatlead.instance_id"] = instance_id
    return attributes


class WebhookEndpoint:
    def __init__(self, receive: ReceiveWebhookHandler, outages: StoreOutages, *, max_body_bytes: int) -> None:
        self._receive = receive
        self._outages = outages
        self._max_body_bytes = max_body_bytes

    async def post(self, request: Request) -> Response:
        provider = PROVIDERS.get(request.path_params["provider"])
        # Never the path's own text as a label: anyone may post to any path.
        label = provider.value if provider is not None else "unknown"
        # A SERVER span continuing the caller's trace when it sent a traceparent (the simulator does, for
        # the message it reports on; real providers do not: their webhooks start traces of their own).
        with tracing.span(
            f"webhook {label.lower()}",
            kind=SpanKind.SERVER,
            parent=tracing.extract(request.headers) if tracing.enabled() else None,
            attributes=_span_attributes(label, request.path_params["instance_id"]),
        ) as current:
            response, kind = await self._answer(request, provider)
            if current is not None:
                current.set_attribute("http.response.status_code", response.status_code)
                current.set_attribute("whatlead.webhook.kind", kind)
        WEBHOOKS.labels(label, kind, str(response.status_code)).inc()
        return response

    async def _answer(self, request: Request, provider: Provider | None) -> tuple[Response, str]:
        instance_id = request.path_params["instance_id"]
        if provider is None:
            return problem(404, "unknown provider; use one of: " + ", ".join(PROVIDERS)), NO_EVENT
        if not is_valid_id(instance_id):
            return problem(404, "the instance id in the path is not a UUID"), NO_EVENT
        # The raw list: names arrive lower-cased; a repeated header keeps its last value.
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers.raw}
        if media_type(headers) not in CONTENT_TYPES[provider]:
            accepted = " or ".join(sorted(CONTENT_TYPES[provider]))
            return problem(415, f"{provider.value.lower()} webhooks are {accepted}"), NO_EVENT
        try:
            body = await read_body(request, headers, self._max_body_bytes)
        except BodyTooLarge:
            return problem(413, f"the body is over {self._max_body_bytes} bytes"), NO_EVENT
        command = ReceiveWebhook(provider, instance_id, headers, body)
        try:
            received = await self._receive(command)
        except SignatureRejected as rejected:
            VERIFICATION_FAILURES.labels(provider.value, rejected.cause).inc()
            log.info(
                "webhook signature rejected",
                extra={"provider": provider.value, "instance_id": instance_id, "cause": rejected.cause},
            )
            return problem(401, "the signature is missing or not this instance's"), NO_EVENT
        except MalformedWebhook:
            return problem(400, f"not a {provider.value.lower()} webhook body"), NO_EVENT
        except Exception as exc:
            if outage_of(exc) is None:
                log.exception("webhook not stored", extra={"provider": provider.value})
                return problem(500, "the webhook could not be stored; retry"), NO_EVENT
            self._outages.report(exc)  # one WARNING per outage, and probes until NATS is back
            return problem(503, "events cannot be stored right now; retry", {"Retry-After": "1"}), NO_EVENT
        for provider_type in received.ignored_types:
            IGNORED_EVENTS.labels(provider.value, provider_type[:64]).inc()
        answer = f'{{"events": {len(received.events)}, "duplicates": {received.duplicates}}}'
        return Response(answer, media_type=JSON), kind_label(received)


async def alive(_: Request) -> Response:
    return JSONResponse({"status": "alive"})


def readiness(ready: Callable[[], Awaitable[bool]]) -> Callable[[Request], Awaitable[Response]]:
    async def readyz(_: Request) -> Response:
        if await ready():
            return JSONResponse({"status": "ready"})
        return problem(503, "NATS is not connected or the gateway's stream is missing")

    return readyz


async def metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def http_problem(_: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) as problems too."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = exc.headers if isinstance(exc, HTTPException) else None
    return problem(status, HTTPStatus(status).description, dict(headers) if headers else None)


async def unexpected(_: Request, exc: Exception) -> Response:
    log.error("request failed", exc_info=exc)
    return problem(500, "internal error; retry")


def create_app(
    endpoint: WebhookEndpoint,
    ready: Callable[[], Awaitable[bool]],
    realtime: RealtimeEndpoint | None = None,
) -> Starlette:
    """`realtime`: the /v1/realtime WebSocket (a gateway given no ops address closes each socket 1011)."""
    document = OPENAPI_DOCUMENT.read_bytes()

    async def openapi(_: Request) -> Response:
        return Response(document, media_type=JSON)

    return Starlette(
        routes=[
            Route("/webhooks/{provider}/{instance_id}", endpoint.post, methods=["POST"]),
            Route("/healthz", alive, methods=["GET"]),
            Route("/readyz", readiness(ready), methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            # One path, two routes: the WebSocket, and a plain GET told to upgrade (openapi.json's GET).
            WebSocketRoute(REALTIME, (realtime or RealtimeEndpoint(None)).connect),
            Route(REALTIME, upgrade_required, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_problem, Exception: unexpected},
    )
