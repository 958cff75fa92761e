"""Every RPC of every served service, fed generated and malformed requests, answers only documented codes,
stays SERVING, and leaves its stores consistent.

The RPCs come from the descriptors of the services each server registers: a new RPC is fuzzed with no
new test. Each answer is recorded (the histogram printed at the end of the run) and the test fails after
its service's whole run, listing every undocumented answer with the shortest request that got it.
"""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from hypothesis import given, seed
from hypothesis import strategies as st

from libs.rpc.client import health_check
from tests.fuzz.conftest import FUZZ_SETTINGS, SEED, SERVICES
from tests.fuzz.invariants import executor_problems, gate_problems, reputation_problems
from tests.fuzz.mutations import UNUSED_FIELD, length_delimited, long_lists, raw_bodies
from tests.fuzz.outcomes import HISTOGRAM, Call
from tests.fuzz.strategies import RequestStrategies
from tests.fuzz.system import FuzzedSystem, LoopThread, hints


def _fuzz(
    loop: LoopThread,
    system: FuzzedSystem,
    call: Call,
    method: MethodDescriptor,
    bodies: st.SearchStrategy[bytes],
) -> None:
    @FUZZ_SETTINGS
    @seed(SEED)
    @given(bodies)
    def send(body: bytes) -> None:
        _send(loop, system, call, method, body)

    send()


def _send(loop: LoopThread, system: FuzzedSystem, call: Call, method: MethodDescriptor, body: bytes) -> None:
    code, details = loop.call(system.call(call.service, method, body))
    HISTOGRAM.record(call, code, details, body)


def _call(system: FuzzedSystem, service: str, method: MethodDescriptor, kind: str) -> Call:
    limit = system.services[service].max_request_bytes
    return Call(service, method.name, kind, method.input_type, limit)


@pytest.mark.parametrize("service", SERVICES)
def test_generated_requests_get_documented_answers(
    fuzzed: FuzzedSystem, services_loop: LoopThread, service: str
) -> None:
    methods = fuzzed.services[service].methods()
    assert methods, f"{service} registers no RPC"
    for method in methods:
        # Built again for each RPC: the ids that the RPCs before it revealed are hints by now.
        strategies = RequestStrategies(hints(fuzzed.seeds))
        messages = strategies.message(method.input_type).map(lambda m: m.SerializeToString())
        _fuzz(services_loop, fuzzed, _call(fuzzed, service, method, "message"), method, messages)
    _assert_contract_kept(fuzzed, services_loop, service, {"message"})


@pytest.mark.parametrize("service", SERVICES)
def test_malformed_bodies_get_documented_answers(
    fuzzed: FuzzedSystem, services_loop: LoopThread, service: str
) -> None:
    for method in fuzzed.services[service].methods():
        strategies = RequestStrategies(hints(fuzzed.seeds))
        bodies = raw_bodies(method.input_type, strategies.message(method.input_type))
        _fuzz(services_loop, fuzzed, _call(fuzzed, service, method, "bytes"), method, bodies)
        # The size limit's edges: a well-formed body (one unknown field) of exactly the limit, and one more.
        limit = fuzzed.services[service].max_request_bytes
        for size in (limit, limit + 1):
            _send(services_loop, fuzzed, _call(fuzzed, service, method, "size"), method, _body_of_size(size))
        # A thousand broken items in one list: a thousand violations, still one readable answer.
        for body in long_lists(method.input_type):
            _send(services_loop, fuzzed, _call(fuzzed, service, method, "bytes"), method, body)
    _assert_contract_kept(fuzzed, services_loop, service, {"bytes", "size"})


def _body_of_size(size: int) -> bytes:
    header = len(length_delimited(UNUSED_FIELD, b"x" * size)) - size
    body = length_delimited(UNUSED_FIELD, b"x" * (size - header))
    if len(body) != size:  # the length's own varint got one byte shorter
        body = length_delimited(UNUSED_FIELD, b"x" * (size - header + 1))
    assert len(body) == size
    return body


def _assert_contract_kept(system: FuzzedSystem, loop: LoopThread, service: str, kinds: set[str]) -> None:
    problems = HISTOGRAM.failures_of(service, kinds)
    problems += [f"not SERVING: {name}" for name in loop.call(_not_serving(system))]
    problems += [f"store: {problem}" for problem in _store_problems(system)]
    assert not problems, f"{len(problems)} problems after fuzzing {service}:\n" + "\n".join(problems)


async def _not_serving(system: FuzzedSystem) -> list[str]:
    """Every server, and each service it registers, that does not answer SERVING to grpc.health.v1."""
    down = []
    for served in system.services.values():
        check = health_check(served.channel)
        for name in ["", *served.service_names]:
            response = await check(HealthCheckRequest(service=name), timeout=5)
            if response.status != HealthCheckResponse.SERVING:
                down.append(f"{served.name} {name}".strip())
    return down


def _store_problems(system: FuzzedSystem) -> list[str]:
    urls = {name: served.database_url for name, served in system.services.items()}
    return [
        *reputation_problems(urls["reputation"]),
        *gate_problems(urls["gate"]),
        *executor_problems(urls["executor"], urls["gate"]),
    ]
