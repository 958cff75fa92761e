"""Spans kept in memory: the process's tracer provider, installed once (the API takes one per process),
with a synchronous processor so a span is readable as soon as it ends. Each test starts with none and
turns the helpers off again when it ends, so the other tests of the run trace nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from libs import tracing

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    tracing.install(_PROVIDER)
    try:
        yield _EXPORTER
    finally:
        tracing.uninstall()
        _EXPORTER.clear()
