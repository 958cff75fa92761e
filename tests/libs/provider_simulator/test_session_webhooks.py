"""Per-session webhooks: each session's events go to its own URL, signed with its own key, set through
WAHA's sessions API (by the real WahaProvider); sessions without their own use the global webhook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from libs.provider_simulator import ProviderSimulator
from libs.providers import ErrorClass, ProviderError, Restriction, SendTextRequest, WahaProvider
from libs.webhooks import webhook_secret
from tests.libs.provider_simulator.conftest import API_KEY, SECRET
from tests.libs.provider_simulator.receiver import WebhookReceiver, wait_until

REPO_ROOT = str(Path(__file__).resolve().parents[3])
PHONE = "5511987650000"
GROUP = "120363025246125486@g.us"
MASTER_KEY = b"master-key-of-the-gateway-for-tests"
KEY_A = webhook_secret(MASTER_KEY, "instance-a")
KEY_B = webhook_secret(MASTER_KEY, "instance-b")
# WAHA's WASessionStatusBody (devlikeapro/waha src/structures/webhooks.dto.ts).
WAHA_SESSION_STATUS_PAYLOAD = {"name", "status", "statuses", "data"}


def text(session: str, recipient: str = PHONE) -> SendTextRequest:
    return SendTextRequest(instance_ref=session, recipient=recipient, text="Olá")


def signed_with(key: str, receiver: WebhookReceiver) -> bool:
    return bool(receiver.deliveries) and all(
        hmac.compare_digest(
            delivery.headers["X-Webhook-Hmac"],
            hmac.new(key.encode(), delivery.raw, hashlib.sha512).hexdigest(),
        )
        and delivery.headers["X-Webhook-Hmac-Algorithm"] == "sha512"
        for delivery in receiver.deliveries
    )


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[WebhookReceiver, WebhookReceiver]]:
    first, second = WebhookReceiver(), WebhookReceiver()
    await first.start()
    await second.start()
    yield first, second
    await first.stop()
    await second.stop()


async def test_two_sessions_two_receivers_two_keys_and_the_default_still_applies(
    simulator: ProviderSimulator,
    waha: WahaProvider,
    receiver: WebhookReceiver,
    receivers: tuple[WebhookReceiver, WebhookReceiver],
) -> None:
    receiver_a, receiver_b = receivers
    await waha.set_session_webhook("sales-a", url=receiver_a.url, hmac_key=KEY_A)
    await waha.set_session_webhook("sales-b", url=receiver_b.url, hmac_key=KEY_B)

    sent_a = await waha.send_text(text("sales-a"))
    sent_b = await waha.send_text(text("sales-b"))
    sent_c = await waha.send_text(text("sales-c"))  # no webhook of its own
    await wait_until(lambda: len(receiver_a.events("message.ack")) == 3)
    await wait_until(lambda: len(receiver_b.events("message.ack")) == 3)
    await wait_until(lambda: len(receiver.events("message.ack")) == 3)

    for own, session, sent in (
        (receiver_a, "sales-a", sent_a),
        (receiver_b, "sales-b", sent_b),
        (receiver, "sales-c", sent_c),
    ):
        assert {event["session"] for event in own.events()} == {session}
        assert {event["payload"]["id"] for event in own.events("message.ack")} == {sent.provider_message_id}
    assert signed_with(KEY_A, receiver_a) and not signed_with(KEY_B, receiver_a)
    assert signed_with(KEY_B, receiver_b) and not signed_with(KEY_A, receiver_b)
    assert signed_with(SECRET, receiver) and not signed_with(KEY_A, receiver)


async def test_a_session_gets_only_the_events_it_asked_for(
    simulator: ProviderSimulator,
    waha: WahaProvider,
    receiver: WebhookReceiver,
    receivers: tuple[WebhookReceiver, WebhookReceiver],
) -> None:
    statuses, _ = receivers
    await waha.set_session_webhook("sales-a", url=statuses.url, hmac_key=KEY_A, events=["session.status"])
    await waha.send_text(text("sales-a"))
    # A later send elsewhere: once its READ ack is delivered, sales-a's acks (due earlier) were handled.
    await waha.send_text(text("sales-b"))
    await wait_until(lambda: len(receiver.events("message.ack")) == 3)
    simulator.ban("sales-a")
    await wait_until(lambda: bool(statuses.events("session.status")))
    await wait_until(lambda: simulator.webhooks.stats()["pending"] == 0)
    assert [event["event"] for event in statuses.events()] == ["session.status"]
    assert {event["session"] for event in receiver.events()} == {"sales-b"}


async def test_a_session_webhook_is_retried_with_its_own_policy(
    simulator: ProviderSimulator,
    http: aiohttp.ClientSession,
    receivers: tuple[WebhookReceiver, WebhookReceiver],
) -> None:
    flaky, _ = receivers
    flaky.refuse_next = 2
    config = {
        "webhooks": [
            {
                "url": flaky.url,
                "events": ["*"],
                "hmac": {"key": KEY_A},
                "retries": {"policy": "constant", "delaySeconds": 0.01, "attempts": 3},
                "customHeaders": [{"name": "X-Tenant", "value": "acme"}],
            }
        ]
    }
    headers = {"X-Api-Key": API_KEY}
    async with http.put(
        f"{simulator.base_url}/api/sessions/sales-a", json={"config": config}, headers=headers
    ) as response:
        assert response.status == 200
        shown = await response.json()
    assert shown["config"]["webhooks"][0]["hmac"] == {"key": "***"}  # the key is not handed back
    simulator.ban("sales-a")
    await wait_until(lambda: len(flaky.deliveries) == 1)
    assert flaky.refused == 2 and simulator.webhooks.stats()["retried"] == 2
    assert flaky.deliveries[0].headers["X-Tenant"] == "acme" and signed_with(KEY_A, flaky)


async def test_sessions_api_shapes(
    simulator: ProviderSimulator, http: aiohttp.ClientSession, receiver: WebhookReceiver
) -> None:
    base, headers = simulator.base_url, {"X-Api-Key": API_KEY}
    config = {"metadata": {"tenant": "acme"}, "webhooks": [{"url": receiver.url, "events": ["message"]}]}
    async with http.post(
        f"{base}/api/sessions", json={"name": "sales-n", "config": config}, headers=headers
    ) as r:
        assert r.status == 201 and (await r.json())["config"] == config
    async with http.post(
        f"{base}/api/sessions", json={"name": "sales-n", "config": {}}, headers=headers
    ) as r:
        assert r.status == 422  # as WAHA: an existing session is updated with PUT
    for bad in (
        {"webhooks": {"url": receiver.url}},
        {"webhooks": [{"url": "ftp://x", "events": ["message"]}]},
        {"webhooks": [{"url": receiver.url, "events": "message"}]},
        {"webhooks": [{"url": receiver.url, "events": ["message"], "retries": {"policy": "random"}}]},
    ):
        async with http.put(f"{base}/api/sessions/sales-n", json={"config": bad}, headers=headers) as r:
            assert r.status == 400, bad
    assert simulator.sessions["sales-n"].config == config  # a refused config changes nothing
    # A config without webhooks sends the session's events to the global webhook again.
    async with http.put(f"{base}/api/sessions/sales-n", json={"config": {}}, headers=headers) as r:
        assert r.status == 200
    assert simulator.webhook_targets(simulator.sessions["sales-n"])[0].url == receiver.url


async def test_metadata_of_the_session_config_is_in_every_webhook(
    simulator: ProviderSimulator, waha: WahaProvider, receivers: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    own, _ = receivers
    simulator.set_session_config(
        "sales-a",
        {"metadata": {"tenant": "acme"}, "webhooks": [{"url": own.url, "events": ["message.ack"]}]},
    )
    await waha.send_text(text("sales-a"))
    await wait_until(lambda: len(own.events()) == 3)
    assert all(event["metadata"] == {"tenant": "acme"} for event in own.events())
    assert "X-Webhook-Hmac" not in own.deliveries[0].headers  # no hmac key: unsigned, as WAHA


async def point(simulator: ProviderSimulator, api_key: str, url: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "libs.provider_simulator.session_webhook",
        "--simulator",
        simulator.base_url,
        "--api-key",
        api_key,
        "--session",
        "sales-a",
        "--url",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"SIMULATOR_SESSION_WEBHOOK_SECRET": KEY_A, "PATH": "/usr/bin:/bin"},
        cwd=REPO_ROOT,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    return await process.wait(), out.decode(), err.decode()


async def test_one_command_points_a_session_at_a_receiver(
    simulator: ProviderSimulator, waha: WahaProvider, receivers: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    own, _ = receivers
    status, out, _ = await point(simulator, API_KEY, own.url)
    assert status == 0 and own.url in out and KEY_A not in out
    await waha.send_text(text("sales-a"))
    await wait_until(lambda: len(own.events("message.ack")) == 3)
    assert signed_with(KEY_A, own)

    status, out, err = await point(simulator, "wrong-key", own.url)
    assert status == 1 and "sales-a" in err and KEY_A not in out + err


# --- bodies as WAHA shapes them ------------------------------------------------------------------------


async def test_group_receipts_are_message_ack_group_with_the_participant(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver
) -> None:
    sent = await waha.send_text(text("sales-03", recipient=GROUP))
    await wait_until(lambda: len(receiver.events("message.ack.group")) == 3)
    assert receiver.events("message.ack") == []
    acks = receiver.events("message.ack.group")
    assert [(a["payload"]["ack"], a["payload"]["ackName"]) for a in acks] == [
        (1, "SERVER"),
        (2, "DEVICE"),
        (3, "READ"),
    ]
    for ack in acks:
        payload = ack["payload"]
        assert payload["id"] == sent.provider_message_id and payload["from"] == GROUP
        assert payload["participant"].endswith("@c.us")


async def test_a_463_reports_the_reachout_timelock_by_session_status(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver
) -> None:
    simulator.configure_session("sales-03", timelock_next=2)
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await waha.send_text(text("sales-03"))
        assert caught.value.restriction is Restriction.REACHOUT_TIMELOCK
    await wait_until(lambda: bool(receiver.events("session.status")))
    simulator.reset_session("sales-03")
    await wait_until(lambda: len(receiver.events("session.status")) == 2)
    started, ended = receiver.events("session.status")  # one per time-lock change, not one per 463
    assert set(started["payload"]) == WAHA_SESSION_STATUS_PAYLOAD
    assert started["payload"]["status"] == "WORKING"
    timelock = started["payload"]["data"]["reachoutTimelock"]
    assert timelock["isActive"] is True
    assert abs(timelock["timeEnforcementEnds"] - started["timestamp"] / 1000) > 60  # unix seconds, ahead
    assert started["me"]["reachoutTimelock"] == timelock
    assert ended["payload"]["data"]["reachoutTimelock"]["isActive"] is False


async def test_a_463_after_acceptance_is_an_error_ack_then_the_timelock(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver
) -> None:
    simulator.configure_session("sales-03", timelock_ack_next=1)
    refused = await waha.send_text(text("sales-03"))  # accepted: the refusal comes by webhook
    await wait_until(lambda: bool(receiver.events("session.status")))
    [error_ack] = receiver.events("message.ack")
    payload = error_ack["payload"]
    assert (payload["id"], payload["ack"], payload["ackName"]) == (refused.provider_message_id, -1, "ERROR")
    assert payload["error"]["code"] == "463" and payload["error"]["blocked"] is True
    [status] = receiver.events("session.status")
    assert status["payload"]["data"]["reachoutTimelock"]["isActive"] is True

    sent = await waha.send_text(text("sales-03"))  # only the next N sends
    await wait_until(lambda: len(receiver.events("message.ack")) == 4)
    assert [a["payload"]["ack"] for a in receiver.events("message.ack")] == [-1, 1, 2, 3]
    assert {a["payload"]["id"] for a in receiver.events("message.ack")[1:]} == {sent.provider_message_id}


async def test_a_ban_is_session_status_failed_shaped_like_waha(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver
) -> None:
    simulator.configure_session("sales-03", banned=True)
    simulator.reset_session("sales-03")
    simulator.ban("sales-03")
    with pytest.raises(ProviderError) as caught:
        await waha.send_text(text("sales-03"))
    assert caught.value.error_class is ErrorClass.RESTRICTED
    await wait_until(lambda: len(receiver.events("session.status")) == 3)
    failed = receiver.events("session.status")[-1]
    assert set(failed["payload"]) == WAHA_SESSION_STATUS_PAYLOAD and failed["payload"]["data"] is None
    assert failed["payload"]["status"] == "FAILED"
    assert [point["status"] for point in failed["payload"]["statuses"]] == ["FAILED", "WORKING", "FAILED"]
    assert failed["id"].startswith("evt_") and failed["id"] == failed["id"].lower()  # lower-case ULID
