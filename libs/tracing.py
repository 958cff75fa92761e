"""OpenTelemetry traces: one setup for every process, and the few places a trace crosses a boundary the
instrumentation libraries do not know (an outbox row, a NATS message, a job handed to a worker).

Off unless configured (ADR 0050, docs/tracing.md): with OTEL_TRACES_EXPORTER unset or `none` nothing is
installed, `enabled()` is False, and every helper here returns before touching the API, so a process pays
one boolean test per boundary. On, a message reads as one trace: the Gate's SubmitIntent, its decision,
the relay's publication, each consumer's handling, the provider call and the webhook that reports on it.

Spans carry ids of intents, instances, organizations and events; never phone numbers, message bodies,
webhook bodies, URLs with their queries, keys or secrets.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

log = logging.getLogger(__name__)

TRACER_NAME = "whatlead"
# Exporters this setup knows; anything else is refused at start-up rather than silently not traced.
EXPORTERS = ("otlp", "console")

_enabled = False


def enabled() -> bool:
    return _enabled


def service_name(service: str) -> str:
    """The name a service's spans carry by default: its Prometheus job (`gate_service` → `gate`)."""
    return service.removesuffix("_service")


def configure_tracing(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Install the SDK when OTEL_TRACES_EXPORTER names an exporter (`otlp`: OTLP over gRPC to
    OTEL_EXPORTER_OTLP_ENDPOINT; `console`: stdout, for a look at a local run) and OTEL_SDK_DISABLED is not
    `true`. Sampler, endpoint, headers, batch sizes: the standard OTEL_* variables, read by the SDK.
    OTEL_SERVICE_NAME defaults to the service. Returns whether tracing is on."""
    exporter_name = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or exporter_name in ("", "none"):
        return False
    if exporter_name not in EXPORTERS:
        raise ValueError(f"OTEL_TRACES_EXPORTER={exporter_name!r}: use one of {', '.join(EXPORTERS)} or none")
    # Imported here: a process with tracing off never loads the SDK or the exporter.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    exporter: SpanExporter
    if exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    name = environ.get("OTEL_SERVICE_NAME") or service_name(service)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))  # sampler: OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(exporter))
    install(provider)
    log.info("tracing on", extra={"exporter": exporter_name, "service_name": name})
    return True


def install(provider: trace.TracerProvider) -> None:
    """Make `provider` the process's and turn the helpers on (configure_tracing; tests with an in-memory
    exporter)."""
    global _enabled
    if trace.get_tracer_provider() is not provider:  # the API takes a provider once per process
        trace.set_tracer_provider(provider)
    _enabled = True


def uninstall() -> None:
    """Turn the helpers off again (tests): the API keeps its provider, nothing here starts spans."""
    global _enabled
    _enabled = False


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


# --- gRPC -------------------------------------------------------------------------------------------------


def grpc_server_interceptors(services: Iterable[str]) -> list[Any]:
    """A server span per call of the unary methods of `services` (full names), continuing the caller's
    trace from the call's metadata; empty when tracing is off. Not the streaming methods: the library's
    wrapper expects an async generator, ours write with `context.write`, and a stream's span would last as
    long as its watcher stays. Not health or reflection either."""
    if not _enabled:
        return []
    from google.protobuf import descriptor_pool
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    pool = descriptor_pool.Default()
    traced: set[str] = set()
    for name in services:
        try:
            methods = pool.FindServiceByName(name).methods
        except KeyError:  # a service without a descriptor (raw handlers in tests): not traced
            continue
        traced.update(
            f"/{name}/{m.name}" for m in methods if not m.client_streaming and not m.server_streaming
        )
    return [aio_server_interceptor(filter_=lambda details: details.method in traced)]  # type: ignore[no-untyped-call]


def grpc_client_interceptors() -> list[Any]:
    """A client span per unary call, its context put in the call's metadata; empty when tracing is off.
    grpc.aio files an interceptor under one kind of call only: this one is unary-unary (streams are
    long-lived watches, not a step of a message's trace)."""
    if not _enabled:
        return []
    import grpc
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    unary = grpc.aio.UnaryUnaryClientInterceptor
    return [i for i in aio_client_interceptors() if isinstance(i, unary)]  # type: ignore[no-untyped-call]


# --- carriers: NATS headers, HTTP headers, outbox rows ----------------------------------------------------


def inject(headers: MutableMapping[str, str]) -> None:
    """Put the current span's context in `headers` (W3C traceparent/tracestate), if there is one."""
    if _enabled:
        propagate.inject(headers)


def extract(headers: Mapping[str, str] | None) -> Context:
    """The context carried by `headers` (a NATS message's, an HTTP request's); empty if none."""
    return propagate.extract(dict(headers or {}))


def carrier_text(span_context: Context | None = None) -> str | None:
    """The context (default: the current one) as an outbox row stores it: the propagator's headers as
    JSON; None when tracing is off or there is no span to continue."""
    if not _enabled:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=span_context)
    return json.dumps(carrier, separators=(",", ":")) if carrier else None


def context_of_text(text: str | None) -> Context | None:
    """The context an outbox row stored (carrier_text); None when it has none or it does not parse."""
    if not text:
        return None
    try:
        carrier = json.loads(text)
    except ValueError:
        return None
    if not isinstance(carrier, dict):
        return None
    return propagate.extract({str(k): str(v) for k, v in carrier.items()})


# --- what the outbox writes: the span that caused each event ----------------------------------------------

# Spans of the events a consumer is applying in one transaction, by correlation id (an intent's id for
# every event of its message): a batch writes each event's consequences under its own cause.
_applying: contextvars.ContextVar[Mapping[str, Context] | None] = contextvars.ContextVar(
    "whatlead_tracing_applying", default=None
)


class _Recent:
    """Contexts by correlation id, the last few thousand: what a worker of this process continues when it
    executes a job a consumer created (the job itself is claimed later, outside the consumer's span)."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._contexts: OrderedDict[str, Context] = OrderedDict()

    def remember(self, key: str, context: Context) -> None:
        self._contexts[key] = context
        self._contexts.move_to_end(key)
        while len(self._contexts) > self._size:
            self._contexts.popitem(last=False)

    def recall(self, key: str) -> Context | None:
        return self._contexts.get(key)


_recent = _Recent()


def outbox_context(correlation_id: str = "") -> str | None:
    """What an outbox row of an event with `correlation_id` stores: the span of the event being applied
    with that correlation, else the current span, else the last one this process saw for it."""
    if not _enabled:
        return None
    applying = _applying.get()
    if applying is not None and correlation_id in applying:
        return carrier_text(applying[correlation_id])
    if trace.get_current_span().get_span_context().is_valid:
        return carrier_text()
    remembered = _recent.recall(correlation_id) if correlation_id else None
    return carrier_text(remembered) if remembered is not None else None


@contextlib.contextmanager
def resumed(correlation_id: str) -> Iterator[None]:
    """Run the block in the last context this process saw for `correlation_id` (a job's intent, whose
    IntentApproved a consumer of this process applied), unless a span is already current."""
    remembered = _recent.recall(correlation_id) if _enabled and correlation_id else None
    if remembered is None or trace.get_current_span().get_span_context().is_valid:
        yield
        return
    token = otel_context.attach(remembered)
    try:
        yield
    finally:
        otel_context.detach(token)


# --- spans ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Context | None = None,
    attributes: Mapping[str, str | int | bool] | None = None,
    only_in_trace: bool = False,
) -> Iterator[Span | None]:
    """A span around the block, current inside it (None, and nothing started, when tracing is off, or when
    `only_in_trace` and no span is current: a health probe's call starts no trace of its own). An
    exception marks it failed with the exception's kind only: its message could quote a body."""
    if not _enabled or (
        only_in_trace and parent is None and not trace.get_current_span().get_span_context().is_valid
    ):
        yield None
        return
    with tracer().start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=dict(attributes or {}),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


class Consuming:
    """The CONSUMER spans of the events a consumer applies in one transaction, one per event, each a child
    of the context in its message's headers. Inside `applying()`, outbox rows of the transaction continue
    the span of the event they correlate with (outbox_context); a lone event's span is also current, so
    whatever its handler calls (a provider, another service) is its child."""

    def __init__(self) -> None:
        self._spans: list[tuple[str, Span]] = []

    def start(
        self, name: str, headers: Mapping[str, str] | None, correlation_id: str, attributes: dict[str, Any]
    ) -> None:
        if not _enabled:
            return
        started = tracer().start_span(
            name, context=extract(headers), kind=SpanKind.CONSUMER, attributes=attributes
        )
        self._spans.append((correlation_id, started))

    @contextlib.contextmanager
    def applying(self) -> Iterator[None]:
        if not self._spans:
            yield
            return
        contexts = {cid: trace.set_span_in_context(s) for cid, s in self._spans if cid}
        for cid, ctx in contexts.items():
            _recent.remember(cid, ctx)
        applying_token = _applying.set(contexts)
        lone = trace.set_span_in_context(self._spans[0][1]) if len(self._spans) == 1 else None
        context_token = otel_context.attach(lone) if lone is not None else None
        try:
            yield
        finally:
            if context_token is not None:
                otel_context.detach(context_token)
            _applying.reset(applying_token)

    def end(self, error: BaseException | None = None) -> None:
        for _, started in self._spans:
            if error is not None:
                started.set_status(Status(StatusCode.ERROR, type(error).__name__))
            started.end()
        self._spans = []


def start_publishing(
    name: str, stored: str | None, headers: MutableMapping[str, str], attributes: dict[str, Any]
) -> Span | None:
    """A PRODUCER span for an event leaving the outbox, child of the context its row stored, and that
    span's context put in the message's `headers`. None (nothing started) when tracing is off or the row
    stored no context (written with tracing off, or by no traced cause: a timer's, a worker's)."""
    parent = context_of_text(stored) if _enabled else None
    if parent is None:
        return None
    started = tracer().start_span(name, context=parent, kind=SpanKind.PRODUCER, attributes=attributes)
    propagate.inject(headers, context=trace.set_span_in_context(started))
    return started


def end_all(spans: Sequence[Span | None], error: BaseException | None = None) -> None:
    for started in spans:
        if started is None:
            continue
        if error is not None:
            started.set_status(Status(StatusCode.ERROR, type(error).__name__))
        started.end()
