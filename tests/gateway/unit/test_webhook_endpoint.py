"""The webhook endpoint in-process (httpx.ASGITransport) with fakes: what each provider is answered, in
which order the checks run, and what is counted."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client import REGISTRY

from gateway.application.receive_webhook import ReceiveWebhookHandler
from gateway.entrypoints.http import WebhookEndpoint, create_app
from libs.seedwork.clock import FakeClock
from libs.seedwork.ids import new_id
from libs.stores import StoreOutages
from tests.gateway.fakes import (
    MASTER_KEY,
    SIGNATURE_HEADER,
    FakeEventSink,
    FakeNormalizer,
    FakeVerifier,
    sign,
    webhook,
)

LIMIT = 64 * 1024
JSON = {"content-type": "application/json"}


@dataclass
class Gateway:
    client: httpx.AsyncClient
    verifier: FakeVerifier
    normalizer: FakeNormalizer
    sink: FakeEventSink
    readiness: list[bool]

    async def post(
        self,
        body: bytes,
        *,
        provider: str = "waha",
        instance_id: str | None = None,
        signed_for: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        instance_id = instance_id or INSTANCE
        all_headers = {**JSON, SIGNATURE_HEADER: sign(signed_for or instance_id, body), **(headers or {})}
        url = f"/webhooks/{provider}/{instance_id}"
        return await self.client.post(url, content=body, headers=all_headers)


INSTANCE = new_id()


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    verifier, normalizer, sink = FakeVerifier(), FakeNormalizer(), FakeEventSink()
    readiness = [True]

    async def ready() -> bool:
        return readiness[0]

    endpoint = WebhookEndpoint(
        ReceiveWebhookHandler(verifier, normalizer, sink, FakeClock()),
        StoreOutages("gateway-test"),
        max_body_bytes=LIMIT,
    )
    app = create_app(endpoint, ready)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield Gateway(client, verifier, normalizer, sink, readiness)


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def delivered(message_id: str = "msg-1") -> bytes:
    return webhook({"kind": "MESSAGE_DELIVERED", "message_id": message_id})


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return dict(body)


async def test_a_signed_webhook_is_stored_then_answered_2xx_and_counted(gateway: Gateway):
    labels = {"provider": "WAHA", "kind": "MESSAGE_DELIVERED", "status": "200"}
    before = counted("whatlead_gateway_webhooks_total", **labels)

    response = await gateway.post(delivered("msg-ok"))

    assert response.status_code == 200
    assert response.json() == {"events": 1, "duplicates": 0}
    [event] = gateway.sink.stored.values()
    assert (event.instance_id, event.provider_message_id) == (INSTANCE, "msg-ok")
    assert counted("whatlead_gateway_webhooks_total", **labels) == before + 1


async def test_a_webhook_posted_five_times_is_stored_once_and_the_repeats_are_duplicates(gateway: Gateway):
    body = delivered("msg-five")
    answers = [(await gateway.post(body)).json() for _ in range(5)]

    assert len(gateway.sink.stored) == 1
    assert [answer["duplicates"] for answer in answers] == [0, 1, 1, 1, 1]


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("signature missing", 401),
        ("signature of another instance", 401),
        ("body changed after signing", 401),
        ("signed, not JSON", 400),
        ("signed, JSON of the wrong shape", 400),
        ("unknown provider", 404),
        ("instance id not a UUID", 404),
        ("text/plain", 415),
        ("form to a provider that only sends JSON", 415),
        ("declared length over the limit", 413),
        ("chunked body over the limit", 413),
    ],
)
async def test_bad_webhooks_get_a_problem_and_nothing_is_stored(gateway: Gateway, case: str, status: int):
    body = delivered()
    client = gateway.client
    url = f"/webhooks/waha/{INSTANCE}"
    signature = {SIGNATURE_HEADER: sign(INSTANCE, body)}
    requests: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
        "signature missing": lambda: client.post(url, content=body, headers=JSON),
        "signature of another instance": lambda: gateway.post(body, signed_for=new_id()),
        "body changed after signing": lambda: client.post(
            url, content=body.replace(b"msg-1", b"msg-2"), headers={**JSON, **signature}
        ),
        "signed, not JSON": lambda: gateway.post(b"{not json"),
        "signed, JSON of the wrong shape": lambda: gateway.post(b'{"events": [{"kind": "NOPE"}]}'),
        "unknown provider": lambda: gateway.post(body, provider="twilio"),
        "instance id not a UUID": lambda: gateway.post(body, instance_id="../../admin"),
        "text/plain": lambda: gateway.post(body, headers={"content-type": "text/plain"}),
        "form to a provider that only sends JSON": lambda: gateway.post(
            b"jsonData=%7B%7D", headers={"content-type": "application/x-www-form-urlencoded"}
        ),
        "declared length over the limit": lambda: gateway.post(b" " * (LIMIT + 1)),
        "chunked body over the limit": lambda: client.post(url, content=chunks(LIMIT + 1), headers=JSON),
    }

    response = await requests[case]()

    assert_problem(response, status)
    assert gateway.sink.stored == {}


async def chunks(size: int) -> AsyncIterator[bytes]:
    """A body of `size` bytes sent chunked (no Content-Length), 4 KiB at a time."""
    for start in range(0, size, 4096):
        yield b" " * min(4096, size - start)


async def test_nothing_is_parsed_before_the_signature_is_proven(gateway: Gateway):
    before = counted("whatlead_gateway_verification_failures_total", provider="WUZAPI", cause="mismatch")

    response = await gateway.post(b"{not json", provider="wuzapi", signed_for=new_id())

    assert_problem(response, 401)
    assert (gateway.verifier.calls, gateway.normalizer.calls) == (1, 0)
    after = counted("whatlead_gateway_verification_failures_total", provider="WUZAPI", cause="mismatch")
    assert after == before + 1


async def test_wuzapi_may_post_its_form_mode(gateway: Gateway):
    # wuzapi's default: the event's JSON url-encoded in the `jsonData` field.
    body = str(httpx.QueryParams({"instanceName": "s1", "jsonData": delivered("msg-form").decode()})).encode()

    response = await gateway.post(
        body, provider="wuzapi", headers={"content-type": "application/x-www-form-urlencoded"}
    )

    assert response.status_code == 200, response.text
    assert [event.provider_message_id for event in gateway.sink.stored.values()] == ["msg-form"]


async def test_nats_down_is_503_and_the_retry_after_it_came_back_is_stored_once(gateway: Gateway):
    body = delivered("msg-outage")
    gateway.sink.down = True

    refused = await gateway.post(body)

    assert_problem(refused, 503)
    assert refused.headers["retry-after"] == "1"
    assert gateway.sink.stored == {}
    gateway.sink.down = False
    assert (await gateway.post(body)).status_code == 200
    assert (await gateway.post(body)).json()["duplicates"] == 1
    assert len(gateway.sink.stored) == 1


async def test_a_bug_while_storing_is_500_without_the_exception_in_the_answer(gateway: Gateway):
    gateway.sink.broken = True

    problem = assert_problem(await gateway.post(delivered()), 500)

    assert "RuntimeError" not in json.dumps(problem) and "a bug" not in json.dumps(problem)


async def test_event_types_whatlead_does_not_use_are_accepted_and_counted(gateway: Gateway):
    labels = {"provider": "WAHA", "type": "presence.update"}
    before = counted("whatlead_gateway_ignored_events_total", **labels)
    unused = {"provider": "WAHA", "kind": "none", "status": "200"}
    answered_before = counted("whatlead_gateway_webhooks_total", **unused)

    response = await gateway.post(webhook(ignored=["presence.update"]))

    assert response.json() == {"events": 0, "duplicates": 0}
    assert counted("whatlead_gateway_ignored_events_total", **labels) == before + 1
    assert counted("whatlead_gateway_webhooks_total", **unused) == answered_before + 1


async def test_an_unknown_provider_is_counted_under_one_label_whatever_the_path_says(gateway: Gateway):
    labels = {"provider": "unknown", "kind": "none", "status": "404"}
    before = counted("whatlead_gateway_webhooks_total", **labels)

    for name in ("a", "b", "c"):
        await gateway.post(delivered(), provider=name)

    assert counted("whatlead_gateway_webhooks_total", **labels) == before + 3


async def test_other_paths_and_methods_are_problems_too(gateway: Gateway):
    assert_problem(await gateway.client.get("/nope"), 404)
    assert_problem(await gateway.client.get(f"/webhooks/waha/{INSTANCE}"), 405)


async def test_health_readiness_and_metrics(gateway: Gateway):
    assert (await gateway.client.get("/healthz")).json() == {"status": "alive"}
    assert (await gateway.client.get("/readyz")).status_code == 200
    gateway.readiness[0] = False
    assert_problem(await gateway.client.get("/readyz"), 503)
    await gateway.post(delivered())
    metrics = await gateway.client.get("/metrics")
    assert metrics.status_code == 200
    assert "whatlead_gateway_webhooks_total" in metrics.text


async def test_bodies_and_secrets_never_reach_the_log(gateway: Gateway, caplog: pytest.LogCaptureFixture):
    secret_text = "apikey-in-the-body-7f3a"
    body = webhook({"kind": "MESSAGE_DELIVERED", "message_id": secret_text})
    caplog.set_level(logging.DEBUG)

    await gateway.post(body, signed_for=new_id())  # 401
    await gateway.post(b"{" + secret_text.encode())  # 400
    gateway.sink.down = True
    await gateway.post(body)  # 503
    gateway.sink.down, gateway.sink.broken = False, True
    await gateway.post(body)  # 500, logged with its traceback

    logged = "\n".join(f"{record.getMessage()} {vars(record)}" for record in caplog.records)
    assert secret_text not in logged
    assert sign(INSTANCE, body) not in logged and MASTER_KEY.decode() not in logged
