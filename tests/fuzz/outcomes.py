"""What the fuzzed calls got back: the status codes the contracts document, and a histogram of the run
(gRPC status names per RPC; for the gateway's HTTP routes, status codes per route)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import text_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

CONTRACTS = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"
# docs/contracts.md, "Status codes": every RPC may answer these; its row in the table adds its own.
EVERY_RPC = frozenset({grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT})
# Documented for every RPC too, and still failures here: RESOURCE_EXHAUSTED is for a request over the size
# limit (checked on its own), DEADLINE_EXCEEDED / CANCELLED would be a hung server (this client neither
# cancels nor gives up before CALL_TIMEOUT), UNAVAILABLE a store down (all are up), INTERNAL a bug.
OVERSIZED = grpc.StatusCode.RESOURCE_EXHAUSTED


def documented_codes(contracts: str) -> dict[tuple[str, str], frozenset[grpc.StatusCode]]:
    """The table of docs/contracts.md's "Status codes": (context, RPC) -> the codes it adds, e.g.
    ("gate", "DecideIntent") -> {NOT_FOUND, FAILED_PRECONDITION}."""
    section = contracts.split("### Status codes", 1)[1].split("\n## ", 1)[0]
    table: dict[tuple[str, str], frozenset[grpc.StatusCode]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0] or cells[0] == "RPC" or set(cells[0]) <= {"-"}:
            continue
        context = cells[0].split()[0].lower()
        codes = frozenset(grpc.StatusCode[name] for name in re.findall(r"`([A-Z][A-Z_]+)`", cells[1]))
        for rpc in re.findall(r"`([A-Z][a-z]\w*)`", cells[0]):
            table[(context, rpc)] = codes
    return table


DOCUMENTED = documented_codes(CONTRACTS.read_text())

# What an answer must never show a client: an exception's name, its class, a traceback.
LEAK = re.compile(r"Traceback|<class '|\b[A-Z]\w*(Error|Exception)\b")


@dataclass
class Failure:
    count: int
    details: str
    body: bytes  # the shortest request that got this answer
    request_type: Descriptor


def _shown(failure: Failure) -> str:
    """The request as text when it parses (the fields and values that did it), else its first bytes."""
    head = f"the {len(failure.body)}-byte request"
    try:
        request = GetMessageClass(failure.request_type).FromString(failure.body)
    except DecodeError:
        return f"{head} {failure.body[:64].hex()}"
    return f"{head} {{{text_format.MessageToString(request, as_one_line=True)[:300]}}}"


@dataclass(frozen=True)
class Call:
    service: str
    rpc: str
    kind: str  # "message" (generated), "bytes" (malformed) or "size" (at and past the size limit)
    request_type: Descriptor
    max_request_bytes: int  # the server's limit: a larger body is refused with RESOURCE_EXHAUSTED

    @property
    def documented(self) -> frozenset[grpc.StatusCode]:
        """What docs/contracts.md lets this RPC answer (an RPC missing from its table: OK and
        INVALID_ARGUMENT only, until its codes are documented)."""
        return EVERY_RPC | DOCUMENTED.get((self.service, self.rpc), frozenset())


class Histogram:
    """Every answer of the run by service, RPC (or HTTP route) and code; and the answers that break the
    contract."""

    def __init__(self) -> None:
        self.codes: Counter[tuple[str, str, str]] = Counter()
        self.failures: dict[tuple[str, str, str, str, str], Failure] = {}
        # (service, route, status, problem) -> (count, the shortest request that got it, as text)
        self.http_failures: dict[tuple[str, str, str, str], tuple[int, str]] = {}

    def record(self, call: Call, code: grpc.StatusCode, details: str, body: bytes) -> None:
        self.codes[(call.service, call.rpc, code.name)] += 1
        problem = _problem(call, code, details, len(body))
        if problem is None:
            return
        key = (call.service, call.kind, call.rpc, code.name, problem)
        known = self.failures.get(key)
        if known is None:
            self.failures[key] = Failure(1, details, body, call.request_type)
        else:
            known.count += 1
            if len(body) < len(known.body):
                known.body, known.details = body, details

    def record_http(self, service: str, route: str, status: int, problem: str | None, request: str) -> None:
        """One HTTP answer; `problem` says how it broke the OpenAPI document (None when it kept it)."""
        self.codes[(service, route, str(status))] += 1
        if problem is None:
            return
        key = (service, route, str(status), problem)
        count, shortest = self.http_failures.get(key, (0, request))
        self.http_failures[key] = (count + 1, min(shortest, request, key=len))

    def http_failures_of(self, service: str) -> list[str]:
        return [
            f"{route}: {status} x{count} ({problem}); e.g. {request[:400]}"
            for (svc, route, status, problem), (count, request) in sorted(self.http_failures.items())
            if svc == service
        ]

    def failures_of(self, service: str, kinds: set[str]) -> list[str]:
        return [
            f"{rpc}: {code} x{failure.count} ({problem}); e.g. details {failure.details[:160]!r} "
            f"for {_shown(failure)}"
            for (svc, kind, rpc, code, problem), failure in sorted(self.failures.items())
            if svc == service and kind in kinds
        ]

    def report(self) -> list[str]:
        """The histogram per service (total per code), then per RPC."""
        lines: list[str] = []
        for service in sorted({s for s, _, _ in self.codes}):
            totals: Counter[str] = Counter()
            rpcs: dict[str, Counter[str]] = {}
            for (svc, rpc, code), n in self.codes.items():
                if svc == service:
                    totals[code] += n
                    rpcs.setdefault(rpc, Counter())[code] += n
            lines.append(f"{service}: {sum(totals.values())} calls  " + _counts(totals))
            lines += [f"    {rpc:<22} " + _counts(rpcs[rpc]) for rpc in sorted(rpcs)]
        return lines


def _counts(counter: Counter[str]) -> str:
    return "  ".join(f"{code} {n}" for code, n in counter.most_common())


def _problem(call: Call, code: grpc.StatusCode, details: str, size: int) -> str | None:
    if size > call.max_request_bytes:
        return (
            None if code is OVERSIZED else f"a request over the {call.max_request_bytes}-byte limit was read"
        )
    if code is OVERSIZED:
        return f"RESOURCE_EXHAUSTED for a request within the {call.max_request_bytes}-byte limit"
    if code not in call.documented:
        return "not documented for this RPC in docs/contracts.md"
    if code is not grpc.StatusCode.OK and LEAK.search(details):
        return "details name an exception"
    return None


HISTOGRAM = Histogram()
