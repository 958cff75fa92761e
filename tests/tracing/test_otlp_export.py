"""With OTEL_TRACES_EXPORTER=otlp a service's spans reach the collector at OTEL_EXPORTER_OTLP_ENDPOINT over
OTLP/gRPC, named by the service: a collector of the test's own receives them from a fresh interpreter."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.tracing.test_propagation import ROOT

_SERVICE = """
from opentelemetry import trace
from libs import tracing
assert tracing.configure_tracing("reputation_service")
with tracing.span("consume MessageSent"):
    pass
trace.get_tracer_provider().shutdown()  # flushes the batch
"""


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.received: list[trace_service_pb2.ExportTraceServiceRequest] = []

    async def Export(self, request: Any, context: Any) -> trace_service_pb2.ExportTraceServiceResponse:
        self.received.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_spans_reach_the_otlp_endpoint_named_by_the_service() -> None:
    collector = _Collector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        clean = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _SERVICE,
            cwd=ROOT,
            env={
                **clean,
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            },
        )
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    finally:
        await server.stop(None)

    [request] = collector.received
    [resource_spans] = request.resource_spans
    names = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert names["service.name"] == "reputation"
    assert [s.name for scope in resource_spans.scope_spans for s in scope.spans] == ["consume MessageSent"]
