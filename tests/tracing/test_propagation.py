"""Where a trace crosses what the instrumentation libraries do not know (an outbox row, NATS headers, a job
picked up by a worker), with the spans kept in memory; and that with no OTEL_* variable set, nothing is
installed at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from libs import tracing
from libs.messaging.tracing import publishing_span, start_consuming
from libs.seedwork.ids import new_id

ROOT = Path(__file__).resolve().parents[2]
INTENT_A, INTENT_B, INTENT_9 = new_id(), new_id(), new_id()


def _run(script: str, **env: str) -> dict[str, object]:
    """`script` in a fresh interpreter whose environment has no OTEL_* variable but `env`; what it printed
    after RESULT (the console exporter prints spans too)."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [result] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return dict(json.loads(result.removeprefix("RESULT ")))


_STATE = """
import json, sys
from opentelemetry import trace
from libs import tracing
on = tracing.configure_tracing("gate_service")
headers = {}
with tracing.span("anything"):
    tracing.inject(headers)
    stored = tracing.outbox_context("intent")
provider = trace.get_tracer_provider()
resource = getattr(provider, "resource", None)
print("RESULT", json.dumps({
    "on": on,
    "provider": type(provider).__name__,
    "sdk_loaded": "opentelemetry.sdk.trace" in sys.modules,
    "interceptors": len(tracing.grpc_client_interceptors()) + len(tracing.grpc_server_interceptors([])),
    "headers": headers,
    "stored": stored,
    "service_name": resource.attributes.get("service.name") if resource else None,
}))
"""


def test_with_no_otel_variable_set_nothing_is_installed_and_nothing_is_carried() -> None:
    state = _run(_STATE)

    assert state == {
        "on": False,
        "provider": "ProxyTracerProvider",  # the API's own placeholder: no SDK provider, no exporter
        "sdk_loaded": False,
        "interceptors": 0,
        "headers": {},
        "stored": None,
        "service_name": None,
    }


def test_an_exporter_named_turns_tracing_on_with_the_service_as_its_name() -> None:
    state = _run(_STATE, OTEL_TRACES_EXPORTER="console")

    assert state["on"] is True
    assert state["provider"] == "TracerProvider"
    assert state["service_name"] == "gate"
    assert str(state["headers"]).count("traceparent") == 1
    assert state["stored"] is not None


def test_the_sdk_disabled_wins_over_an_exporter_and_otel_service_name_over_the_default() -> None:
    assert _run(_STATE, OTEL_TRACES_EXPORTER="otlp", OTEL_SDK_DISABLED="true")["on"] is False
    named = _run(_STATE, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="gate-eu")
    assert named["service_name"] == "gate-eu"


def test_an_unknown_exporter_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        tracing.configure_tracing("gate", {"OTEL_TRACES_EXPORTER": "zipkin"})


def _ids(span: trace.Span) -> tuple[int, int]:
    context = span.get_span_context()
    return context.trace_id, context.span_id


def test_the_relay_publishes_as_a_child_of_the_span_that_wrote_the_row(spans: InMemorySpanExporter) -> None:
    with tracing.span("submit") as writer:
        assert writer is not None
        stored = tracing.outbox_context("intent-1")
    headers: dict[str, str] = {}

    approved = "whatlead.events.v1.IntentApproved"
    published = publishing_span("gate", "gate.intent.approved", approved, "e1", stored, headers)
    assert published is not None
    tracing.end_all([published])

    [span] = [s for s in spans.get_finished_spans() if s.name == "publish IntentApproved"]
    assert span.kind is SpanKind.PRODUCER
    assert span.parent is not None and (span.parent.trace_id, span.parent.span_id) == _ids(writer)
    # The message carries the publication's own context: consumers are its children.
    remote = trace.get_current_span(tracing.extract(headers)).get_span_context()
    assert (remote.trace_id, remote.span_id) == (span.context.trace_id, span.context.span_id)


def test_a_row_written_with_no_trace_is_published_without_one(spans: InMemorySpanExporter) -> None:
    headers = {"Nats-Msg-Id": "e1"}

    assert tracing.outbox_context("intent-1") is None  # no span current, none remembered
    assert publishing_span("gate", "s", "whatlead.events.v1.IntentApproved", "e1", None, headers) is None
    assert headers == {"Nats-Msg-Id": "e1"}
    assert spans.get_finished_spans() == ()


def _headers_of(span: trace.Span) -> dict[str, str]:
    headers: dict[str, str] = {}
    with trace.use_span(span):
        tracing.inject(headers)
    return headers


def test_each_event_of_a_batch_is_consumed_in_its_own_trace_and_its_outbox_rows_follow_it(
    spans: InMemorySpanExporter,
) -> None:
    first, second = tracing.tracer().start_span("publish a"), tracing.tracer().start_span("publish b")
    consuming = tracing.Consuming()
    for span, correlation in ((first, INTENT_A), (second, INTENT_B)):
        start_consuming(
            consuming,
            service="executor",
            consumer="executor-gate",
            type_name="whatlead.events.v1.IntentApproved",
            event_id=f"event-{correlation}",
            headers=_headers_of(span),
            correlation_id=correlation,
            organization_id="org-1",
        )

    with consuming.applying():
        rows = {cid: tracing.context_of_text(tracing.outbox_context(cid)) for cid in (INTENT_A, INTENT_B)}
        assert not trace.get_current_span().get_span_context().is_valid  # a batch: no one event is current
    consuming.end()

    consumed = {dict(s.attributes or {})["whatlead.correlation_id"]: s for s in spans.get_finished_spans()}
    for span, correlation in ((first, INTENT_A), (second, INTENT_B)):
        mine = consumed[correlation]
        assert mine.kind is SpanKind.CONSUMER and mine.name == "consume IntentApproved"
        assert mine.parent is not None and (mine.parent.trace_id, mine.parent.span_id) == _ids(span)
        context = rows[correlation]
        assert context is not None
        row = trace.get_current_span(context).get_span_context()
        assert (row.trace_id, row.span_id) == (mine.context.trace_id, mine.context.span_id)
    assert dict(consumed[INTENT_A].attributes or {})["whatlead.organization_id"] == "org-1"


def test_a_lone_event_is_current_and_a_worker_later_resumes_its_trace(spans: InMemorySpanExporter) -> None:
    cause = tracing.tracer().start_span("publish IntentApproved")
    consuming = tracing.Consuming()
    start_consuming(
        consuming,
        service="executor",
        consumer="executor-gate",
        type_name="whatlead.events.v1.IntentApproved",
        event_id="event-1",
        headers=_headers_of(cause),
        correlation_id=INTENT_9,
        organization_id="org-1",
    )
    with consuming.applying():
        current = trace.get_current_span().get_span_context()
    consuming.end()
    [consumed] = spans.get_finished_spans()
    assert (current.trace_id, current.span_id) == (consumed.context.trace_id, consumed.context.span_id)

    with tracing.resumed(INTENT_9), tracing.span("executor send"):  # the job's worker, later
        pass

    sent = next(s for s in spans.get_finished_spans() if s.name == "executor send")
    assert sent.parent is not None and sent.parent.span_id == consumed.context.span_id
    assert sent.context.trace_id == cause.get_span_context().trace_id


def test_a_span_that_fails_says_only_what_kind_of_error(spans: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError), tracing.span("provider call"):
        raise ValueError("555-1234 said no")  # a message could quote a phone or a body

    [span] = spans.get_finished_spans()
    assert span.status.description == "ValueError"
    assert span.events == ()  # no exception event with its message


def test_a_correlation_id_that_is_not_one_of_ours_is_not_recorded(spans: InMemorySpanExporter) -> None:
    consuming = tracing.Consuming()
    start_consuming(
        consuming,
        service="reputation",
        consumer="reputation-provider-events",
        type_name="whatlead.events.v1.ProviderEventReceived",
        event_id="event-1",
        headers={},
        correlation_id="true_5511999990000@c.us_3EB0",  # a provider's message id: it spells the phone
        organization_id="org-1",
    )
    consuming.end()

    [span] = spans.get_finished_spans()
    assert "5511999990000" not in str(dict(span.attributes or {}))
