"""The gateway's HTTP routes, fed what schemathesis generates from gateway/openapi.json (requests that fit
the document, and requests that break it), answer only what the document says: its status codes, RFC 9457
problems for every refusal, no 5xx (NATS is up, so not even the documented 503), and /readyz is 200 after.

The gateway is production's: its verifier, its normalizers and a JetStream sink on this run's own subject
root. About a third of the webhooks are signed correctly for a known instance (the generated body as it is,
or a real provider body from tests/gateway/fixtures, also padded to the body limit and one byte past it),
so the normalizers and the stream are reached, not only the 401; a correctly signed one must never be 401,
one past the limit never read. Some carry a content type no provider sends. Every answer is recorded in
the tier's histogram, printed at the end of the run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import nats
import pytest
import schemathesis
from hypothesis import given, seed
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.bootstrap import GatewayParts, build, webhook_adapters
from gateway.config import GatewaySettings
from gateway.entrypoints.http import OPENAPI_DOCUMENT, PROBLEM
from libs.messaging.streams import delete_streams
from libs.seedwork.ids import new_id
from libs.webhooks import (
    EVOLUTION_JWT_HEADER,
    STATIC_SECRET_HEADER,
    WAHA_SIGNATURE_HEADER,
    WUZAPI_SIGNATURE_HEADER,
    webhook_secret,
)
from tests.conftest import NATS_URL
from tests.fuzz.conftest import FUZZ_SETTINGS, SEED
from tests.fuzz.outcomes import HISTOGRAM
from tests.fuzz.system import LoopThread

SERVICE = "gateway"
SCHEMA = schemathesis.openapi.from_dict(json.loads(OPENAPI_DOCUMENT.read_text()))


def _operations() -> list[APIOperation]:
    """Every operation of the document (one schemathesis cannot read fails the run here)."""
    operations = []
    for result in SCHEMA.get_all_operations():
        if not isinstance(result, Ok):
            raise result.err()
        operations.append(result.ok())
    return operations


OPERATIONS = _operations()
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FIXTURES = Path(__file__).resolve().parents[1] / "gateway" / "fixtures" / "webhooks"
# The simulator speaks WAHA: WAHA's bodies are its bodies.
FIXTURE_FOLDER = {"evolution": "evolution", "waha": "waha", "simulator": "waha", "wuzapi": "wuzapi",
                  "turbozap": "turbozap"}  # fmt: skip
# What is done to a generated webhook before it is sent: nothing (so mostly 401 or 404), signed for the
# known instance (its generated body, or a real provider body), or a signed real body padded to the body
# limit, one byte over it, or one byte over it streamed in without a Content-Length.
AS_GENERATED, SIGNED, SIGNED_REAL, AT_LIMIT, OVER_LIMIT, STREAMED_OVER_LIMIT = (
    "as generated", "signed", "signed real", "at the limit", "over the limit", "streamed over the limit"
)  # fmt: skip
TAMPERING = st.sampled_from(
    [AS_GENERATED, SIGNED, SIGNED_REAL] * 4 + [AT_LIMIT, OVER_LIMIT, STREAMED_OVER_LIMIT]
)
# Content types no provider sends (schemathesis sends only the documented ones), now and then instead.
CONTENT_TYPES = st.sampled_from([None] * 12 + ["text/plain", "application/xml", "multipart/form-data", ""])


@dataclass
class FuzzedGateway:
    client: httpx.AsyncClient
    parts: GatewayParts
    master_key: bytes
    instance_id: str  # the instance the signed webhooks are for
    max_body_bytes: int


@pytest.fixture(scope="module")
def gateway(services_loop: LoopThread, jetstream: object, subject_root: str) -> Iterator[FuzzedGateway]:
    """The gateway as production builds it, on a subject root of its own (its stream deleted at the end).
    `jetstream` is asked for what it guarantees: NATS is there (or the run fails under CI=true)."""
    root = f"{subject_root}gwfz"
    master_key = secrets.token_hex(32)
    settings = GatewaySettings(nats_url=NATS_URL, subject_root=root, webhook_master_key=SecretStr(master_key))
    verifier, normalizer = webhook_adapters(settings)
    parts = services_loop.call(build(settings, verifier=verifier, normalizer=normalizer))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=parts.app), base_url="http://gateway")
    try:
        yield FuzzedGateway(client, parts, master_key.encode(), new_id(), settings.max_body_bytes)
    finally:
        services_loop.call(client.aclose())
        services_loop.call(_closed(parts))
        services_loop.call(_delete_stream(root))


async def _closed(parts: GatewayParts) -> None:
    await parts.close()


async def _delete_stream(root: str) -> None:
    connection = await nats.connect(NATS_URL)
    await delete_streams(connection.jetstream(), root, (SERVICE,))
    await connection.close()


def _label(operation: APIOperation) -> str:
    return f"{operation.method.upper()} {operation.path.replace('/{instance_id}', '')}"


@pytest.mark.parametrize("operation", OPERATIONS, ids=_label)
def test_every_route_answers_what_the_openapi_document_says(
    gateway: FuzzedGateway, services_loop: LoopThread, operation: APIOperation
) -> None:
    provider = operation.path.split("/")[2] if operation.path.startswith("/webhooks/") else None
    fixtures = _fixtures(provider) if provider else []
    # A GET with no parameter has nothing to break: only webhooks get requests that break the document.
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if provider else [GenerationMode.POSITIVE]
    statuses: Counter[int] = Counter()
    for mode in modes:

        @FUZZ_SETTINGS
        @seed(SEED)
        @given(operation.as_strategy(mode), TAMPERING, st.sampled_from(fixtures or [b""]), CONTENT_TYPES)
        def send(case: Case, tampering: str, fixture: bytes, content_type: str | None) -> None:
            request = _request(gateway.client, case)
            if provider is not None:
                request = _tampered(gateway, provider, request, tampering, fixture, content_type)
            response = services_loop.call(_send(gateway.client, request))
            statuses[response.status_code] += 1
            broken = _broken(case, response) or (
                _wrong(tampering, response.status_code) if provider else None
            )
            HISTOGRAM.record_http(SERVICE, _label(operation), response.status_code, broken, _shown(request))

        send()

    problems = HISTOGRAM.http_failures_of(SERVICE)
    problems = [problem for problem in problems if problem.startswith(_label(operation) + ":")]
    readiness = services_loop.call(gateway.client.get("/readyz"))
    if readiness.status_code != 200:
        problems.append(f"/readyz answered {readiness.status_code} after the run")
    # Else the run proved little: signed webhooks were normalized and stored, unsigned ones refused.
    if provider is not None:
        problems += [f"never answered {status}" for status in (200, 401) if not statuses[status]]
    assert not problems, f"{len(problems)} problems on {_label(operation)}:\n" + "\n".join(problems)


def _fixtures(provider: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((FIXTURES / FIXTURE_FOLDER[provider]).iterdir())]


def _request(client: httpx.AsyncClient, case: Case) -> httpx.Request:
    """The generated case as bytes on the wire (schemathesis describes it as `requests` would send it)."""
    sent = case.as_transport_kwargs(base_url=str(client.base_url))
    headers = [(name.encode("latin-1", "replace"), value.encode("latin-1", "replace"))
               for name, value in sent["headers"].items()]  # fmt: skip
    return client.build_request(
        sent["method"], sent["url"], params=sent.get("params"), headers=headers, content=_body(sent)
    )


def _body(sent: Mapping[str, Any]) -> bytes:
    if "json" in sent:
        return json.dumps(sent["json"]).encode()
    data = sent.get("data")
    if data is None:
        return b""
    if isinstance(data, dict):  # a form: values that are not text go as their text, as requests sends them
        return urlencode(
            {name: value if isinstance(value, str) else json.dumps(value) for name, value in data.items()}
        ).encode()
    return data if isinstance(data, bytes) else str(data).encode()


def _tampered(
    gateway: FuzzedGateway,
    provider: str,
    request: httpx.Request,
    tampering: str,
    fixture: bytes,
    content_type: str | None,
) -> httpx.Request:
    body = request.content
    headers = {name: value for name, value in request.headers.items() if name != "content-length"}
    if tampering != AS_GENERATED:
        real = fixture if tampering != SIGNED else None
        if real is not None:
            headers["content-type"] = (
                "application/json" if real[:1] == b"{" else "application/x-www-form-urlencoded"
            )
            # JSON and forms alike end in whitespace here without changing what they say
            size = {AT_LIMIT: gateway.max_body_bytes, OVER_LIMIT: gateway.max_body_bytes + 1}.get(tampering)
            size = gateway.max_body_bytes + 1 if tampering == STREAMED_OVER_LIMIT else size
            body = real.ljust(size or 0, b" ")
        headers |= _signature(gateway, provider, body)
        headers.pop("x-webhook-hmac-algorithm", None)
    if content_type is not None:
        headers["content-type"] = content_type
    url = (
        request.url.copy_with(path=f"/webhooks/{provider}/{gateway.instance_id}")
        if tampering != AS_GENERATED
        else request.url
    )
    if tampering == STREAMED_OVER_LIMIT:
        return httpx.Request("POST", url, headers=headers, content=_chunks(body, 64 * 1024))
    return httpx.Request("POST", url, headers=headers, content=body)


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _signature(gateway: FuzzedGateway, provider: str, body: bytes) -> dict[str, str]:
    """The header that proves `body` comes from the known instance's provider, as that provider signs."""
    secret = webhook_secret(gateway.master_key, gateway.instance_id).encode()
    if provider in ("waha", "simulator"):
        return {WAHA_SIGNATURE_HEADER.lower(): hmac.new(secret, body, hashlib.sha512).hexdigest()}
    if provider == "wuzapi":
        return {WUZAPI_SIGNATURE_HEADER.lower(): hmac.new(secret, body, hashlib.sha256).hexdigest()}
    if provider == "evolution":
        return {EVOLUTION_JWT_HEADER.lower(): "Bearer " + _hs256_token(secret)}
    return {STATIC_SECRET_HEADER.lower(): secret.decode()}


def _hs256_token(secret: bytes) -> str:
    """What Evolution sends with a `jwt_key`: an HS256 JWT valid 10 minutes."""

    def encoded(part: bytes) -> str:
        return base64.urlsafe_b64encode(part).rstrip(b"=").decode()

    now = int(time.time())
    header = encoded(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = encoded(json.dumps({"iat": now, "exp": now + 600, "app": "evolution"}).encode())
    signature = hmac.digest(secret, f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}.{payload}.{encoded(signature)}"


async def _send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    response = await client.send(request)
    await response.aread()
    if not isinstance(request.stream, httpx.ByteStream):
        # Streamed in: what was sent is gone; the checks read the request, so show them its headers only.
        response.request = httpx.Request(request.method, request.url, headers=request.headers)
    return response


def _broken(case: Case, response: httpx.Response) -> str | None:
    """How the answer breaks the document, in one line; None when it keeps it."""
    if response.status_code >= 400 and response.headers.get("content-type") != PROBLEM:
        return f"a refusal as {response.headers.get('content-type')!r}, not {PROBLEM}"
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as failures:
        return "; ".join(" ".join(f"{f.title}: {f.message}".split())[:200] for f in failures.exceptions)
    return None


def _wrong(tampering: str, status: int) -> str | None:
    """What the document cannot say: a correctly signed webhook is never 401, one over the limit never
    read (2xx or 400)."""
    if tampering in (SIGNED, SIGNED_REAL, AT_LIMIT) and status == 401:
        return "a correctly signed webhook refused 401"
    if tampering in (OVER_LIMIT, STREAMED_OVER_LIMIT) and status not in (413, 415):
        return "a body over the limit was read"
    return None


def _shown(request: httpx.Request) -> str:
    headers = {
        name: value
        for name, value in request.headers.items()
        if name.startswith(("content-type", "x-", "authorization"))
    }
    try:
        body = f"{len(request.content)} bytes {request.content[:200]!r}"
    except httpx.RequestNotRead:
        body = "a streamed body"
    return f"{request.method} {request.url.raw_path.decode('latin-1')} {headers} {body}"
