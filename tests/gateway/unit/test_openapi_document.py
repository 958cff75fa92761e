"""gateway/openapi.json is valid OpenAPI 3.1 and describes exactly what the app serves: every route and
method, each provider's webhook with the content types it accepts, and every refusal as a problem. The
fuzz tier (tests/fuzz/test_gateway_fuzz.py) checks the answers themselves against it."""

from __future__ import annotations

import json
from typing import Any

import httpx
from openapi_spec_validator import validate
from starlette.routing import Route, WebSocketRoute

from gateway.application.receive_webhook import ReceiveWebhookHandler
from gateway.entrypoints.http import (
    CONTENT_TYPES,
    OPENAPI_DOCUMENT,
    PROBLEM,
    PROVIDERS,
    WebhookEndpoint,
    create_app,
)
from gateway.entrypoints.realtime import QUERY
from libs.seedwork.clock import FakeClock
from libs.stores import StoreOutages
from tests.gateway.fakes import FakeEventSink, FakeNormalizer, FakeVerifier

DOCUMENT: dict[str, Any] = json.loads(OPENAPI_DOCUMENT.read_text())
WEBHOOK = "/webhooks/{provider}/{instance_id}"


async def ready() -> bool:
    return True


def app() -> Any:
    handler = ReceiveWebhookHandler(FakeVerifier(), FakeNormalizer(), FakeEventSink(), FakeClock())
    return create_app(WebhookEndpoint(handler, StoreOutages("gateway-test"), max_body_bytes=1024), ready)


def served_operations() -> set[tuple[str, str]]:
    """(method, path) of every route of the app, the webhook route once per provider it knows. A WebSocket
    opens with a GET (answered 101): documented as that GET, beside the plain GET told to upgrade."""
    operations = set()
    for route in app().routes:
        if isinstance(route, WebSocketRoute):
            operations.add(("GET", route.path))
            continue
        assert isinstance(route, Route)
        paths = (
            [route.path.replace("{provider}", p) for p in PROVIDERS]
            if route.path == WEBHOOK
            else [route.path]
        )
        operations |= {(method, path) for path in paths for method in route.methods or () if method != "HEAD"}
    return operations


def documented_operations() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item}


def test_the_document_is_valid_openapi_3_1():
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1.")


def test_every_route_the_app_serves_is_in_the_document_and_nothing_else():
    served, documented = served_operations(), documented_operations()
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


def test_each_provider_s_webhook_takes_the_content_types_the_endpoint_accepts():
    for name, provider in PROVIDERS.items():
        operation = DOCUMENT["paths"][f"/webhooks/{name}/{{instance_id}}"]["post"]
        assert set(operation["requestBody"]["content"]) == CONTENT_TYPES[provider], name


def test_the_websocket_s_handshake_is_documented_as_a_get_answered_101_or_426():
    operation = DOCUMENT["paths"]["/v1/realtime"]["get"]
    assert set(operation["responses"]) == {"101", "403", "426"}
    assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} == set(QUERY)


def test_every_refusal_in_the_document_is_a_problem():
    refusals = [
        (path, method, status, response)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        for status, response in operation["responses"].items()
        if int(status) >= 400
    ]
    assert refusals
    for path, method, status, response in refusals:
        assert list(response["content"]) == [PROBLEM], f"{method} {path} {status}"


async def test_the_app_serves_the_document_at_openapi_json():
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app()), base_url="http://gateway"
    ) as client:
        response = await client.get("/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == DOCUMENT
