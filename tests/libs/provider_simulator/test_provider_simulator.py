"""The provider simulator, exercised through the real WahaProvider adapter and its own HTTP routes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from libs.provider_simulator import ProviderSimulator, parse_settings, run_simulator
from libs.providers import (
    ErrorClass,
    MediaKind,
    ProviderError,
    Restriction,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    WahaProvider,
    new_client_message_id,
)
from tests.libs.provider_simulator.receiver import WebhookReceiver, wait_until

REPO_ROOT = str(Path(__file__).resolve().parents[3])
PHONE = "5511987650000"
CHAT = f"{PHONE}@c.us"
# Keys of real WAHA webhooks (the shared fixtures message_ack_read.json and message_incoming.json).
WAHA_ENVELOPE = {"id", "timestamp", "event", "session", "metadata", "me", "payload", "engine", "environment"}
WAHA_ACK_PAYLOAD = {"id", "from", "to", "participant", "fromMe", "ack", "ackName"}
WAHA_MESSAGE_PAYLOAD = {"id", "timestamp", "from", "fromMe", "to", "body", "hasMedia", "ack", "ackName"}


async def lookup(
    simulator: ProviderSimulator, http: aiohttp.ClientSession, chat: str, message_id: str
) -> tuple[int, str | None]:
    """WAHA's message lookup, asked directly: (status, the found message's id)."""
    url = f"{simulator.base_url}/api/sales-03/chats/{chat}/messages/{message_id}"
    async with http.get(url, headers={"X-Api-Key": simulator.settings.api_key}) as response:
        body = await response.json()
        return response.status, body.get("id") if response.status == 200 else None


def text(session: str = "sales-03", client_id: str | None = None, recipient: str = PHONE) -> SendTextRequest:
    return SendTextRequest(instance_ref=session, recipient=recipient, text="Olá", client_message_id=client_id)


async def test_an_accepted_send_lands_in_the_ledger(simulator: ProviderSimulator, waha: WahaProvider) -> None:
    client_id = new_client_message_id("intent-1")
    sent = await waha.send_text(text(client_id=client_id))
    assert sent.provider_message_id == f"true_{CHAT}_{client_id}"
    [entry] = simulator.ledger.entries
    assert (entry.session, entry.chat_id, entry.kind, entry.client_id, entry.provider_id) == (
        "sales-03",
        CHAT,
        "text",
        client_id,
        sent.provider_message_id,
    )
    assert abs(entry.at - time.time()) < 5


async def test_every_kind_of_send(simulator: ProviderSimulator, waha: WahaProvider) -> None:
    media = SendMediaRequest(
        instance_ref="s",
        recipient=PHONE,
        kind=MediaKind.DOCUMENT,
        mimetype="application/pdf",
        url="https://cdn.example.com/a.pdf",
        filename="a.pdf",
    )
    image = SendMediaRequest(
        instance_ref="s",
        recipient=PHONE,
        kind=MediaKind.IMAGE,
        mimetype="image/jpeg",
        data_base64="/9j/4AA=",
        caption="hi",
    )
    voice = SendAudioRequest(instance_ref="s", recipient=PHONE, data_base64="T2dnUw==")
    sent = await waha.send_media(media)
    await waha.send_media(image)
    await waha.send_audio(voice)
    reaction = await waha.send_reaction(
        SendReactionRequest(
            instance_ref="s",
            recipient=PHONE,
            message_id=sent.provider_message_id,
            emoji="👍",
            target_from_me=True,
        )
    )
    assert reaction.provider_message_id.startswith(f"true_{CHAT}_")
    assert [entry.kind for entry in simulator.ledger.entries] == ["file", "image", "voice", "reaction"]


async def test_transient_failures_then_success(simulator: ProviderSimulator, waha: WahaProvider) -> None:
    simulator.configure_session("sales-03", fail_next=2, fail_status=500)
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await waha.send_text(text())
        # A 500 proves nothing to the adapter; only the ledger knows nothing left.
        assert caught.value.status == 500
    assert len(simulator.ledger) == 0
    await waha.send_text(text())
    assert len(simulator.ledger) == 1


async def test_rate_limited_answers_429_with_retry_after(
    simulator: ProviderSimulator, waha: WahaProvider
) -> None:
    simulator.configure_session("sales-03", fail_next=1, fail_status=429)
    with pytest.raises(ProviderError) as caught:
        await waha.send_text(text())
    assert (caught.value.error_class, caught.value.retry_after) == (ErrorClass.TRANSIENT, 1.0)


async def test_error_463_is_a_reachout_timelock(simulator: ProviderSimulator, waha: WahaProvider) -> None:
    simulator.configure_session("sales-03", timelock_next=1)
    with pytest.raises(ProviderError) as caught:
        await waha.send_text(text())
    assert caught.value.error_class is ErrorClass.RESTRICTED
    assert caught.value.restriction is Restriction.REACHOUT_TIMELOCK
    assert len(simulator.ledger) == 0
    await waha.send_text(text())  # only the next N sends meet the time-lock


async def test_a_banned_session_is_restricted_and_says_so_by_webhook(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver
) -> None:
    await waha.send_text(text())
    simulator.ban("sales-03")
    with pytest.raises(ProviderError) as caught:
        await waha.send_text(text())
    assert (caught.value.error_class, caught.value.restriction, caught.value.code) == (
        ErrorClass.RESTRICTED,
        Restriction.DISCONNECTED,
        "session_failed",
    )
    await wait_until(lambda: bool(receiver.events("session.status")))
    [event] = receiver.events("session.status")
    assert event["session"] == "sales-03"
    assert event["payload"]["name"] == "sales-03" and event["payload"]["status"] == "FAILED"

    simulator.reset_session("sales-03")
    await waha.send_text(text())
    assert len(simulator.ledger) == 2


async def test_acks_arrive_in_order_signed_like_waha(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver
) -> None:
    sent = await waha.send_text(text())
    await wait_until(lambda: len(receiver.events("message.ack")) == 3)
    acks = receiver.events("message.ack")
    assert [(a["payload"]["ack"], a["payload"]["ackName"]) for a in acks] == [
        (1, "SERVER"),
        (2, "DEVICE"),
        (3, "READ"),
    ]
    secret = simulator.settings.webhook_secret
    assert secret
    for delivery in receiver.deliveries:
        expected = hmac.new(secret.encode(), delivery.raw, hashlib.sha512).hexdigest()
        assert hmac.compare_digest(delivery.headers["X-Webhook-Hmac"], expected)
        assert delivery.headers["X-Webhook-Hmac-Algorithm"] == "sha512"
    ack = acks[-1]
    assert ack["payload"]["id"] == sent.provider_message_id
    assert ack["payload"]["from"] == CHAT and ack["payload"]["fromMe"] is True
    assert ack["id"].startswith("evt_") and len(ack["id"]) == 30
    assert len({a["id"] for a in acks}) == 3
    # Same envelope and payload keys as a real WAHA message.ack.
    assert set(ack) == WAHA_ENVELOPE and set(ack["payload"]) == WAHA_ACK_PAYLOAD


async def test_replies_with_the_configured_probability(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver
) -> None:
    simulator.update_settings(reply_probability=1.0)
    await waha.send_text(text())
    await wait_until(lambda: bool(receiver.events("message")))
    [reply] = receiver.events("message")
    payload = reply["payload"]
    assert (
        payload["fromMe"] is False and payload["from"] == CHAT and payload["id"].startswith(f"false_{CHAT}_")
    )
    assert set(reply) == WAHA_ENVELOPE and set(payload) == WAHA_MESSAGE_PAYLOAD


async def test_lookup_of_a_pre_generated_id(
    simulator: ProviderSimulator, waha: WahaProvider, http: aiohttp.ClientSession
) -> None:
    client_id = new_client_message_id("intent-7")
    sent = await waha.send_text(text(client_id=client_id))
    assert await lookup(simulator, http, CHAT, sent.provider_message_id) == (200, sent.provider_message_id)
    assert await lookup(simulator, http, "all", client_id) == (200, sent.provider_message_id)
    assert (await lookup(simulator, http, "all", new_client_message_id("other")))[0] == 404
    other_chat = "5511900001111@c.us"
    assert (await lookup(simulator, http, other_chat, f"true_{other_chat}_{client_id}"))[0] == 404


async def test_a_slow_provider_gives_ambiguous_and_lookup_settles_it(
    simulator: ProviderSimulator, http: aiohttp.ClientSession
) -> None:
    impatient = WahaProvider(
        base_url=simulator.base_url, api_key=simulator.settings.api_key, session=http, timeout=0.2
    )
    simulator.configure_session("sales-03", latency_ms=400)
    client_id = new_client_message_id("intent-9")
    with pytest.raises(ProviderError) as caught:
        await impatient.send_text(text(client_id=client_id))
    assert caught.value.error_class is ErrorClass.AMBIGUOUS
    # The provider went on and sent it: a blind re-send would now be a duplicate.
    await wait_until(lambda: len(simulator.ledger) == 1)
    simulator.configure_session("sales-03", latency_ms=0)
    assert (await lookup(simulator, http, "all", client_id))[0] == 200


async def test_the_ledger_reports_duplicates_by_client_id(
    simulator: ProviderSimulator, waha: WahaProvider, http: aiohttp.ClientSession
) -> None:
    twice = new_client_message_id("intent-dup")
    await waha.send_text(text(client_id=twice))
    await waha.send_text(text(session="sales-04", client_id=twice))  # even through another instance
    await waha.send_text(text(client_id=new_client_message_id("intent-once")))
    await waha.send_text(text())
    assert simulator.ledger.duplicates() == {twice: 2}

    headers = {"X-Api-Key": simulator.settings.api_key}
    async with http.get(f"{simulator.base_url}/_sim/ledger", headers=headers) as response:
        ledger = await response.json()
    assert ledger["count"] == 4
    assert ledger["by_session"] == {"sales-03": 3, "sales-04": 1}
    assert ledger["duplicates"] == {twice: 2} and ledger["duplicate_sends"] == 1
    assert [entry["seq"] for entry in ledger["entries"]] == [1, 2, 3, 4]
    async with http.get(f"{simulator.base_url}/_sim/ledger?entries=0", headers=headers) as response:
        assert "entries" not in await response.json()
    async with http.delete(f"{simulator.base_url}/_sim/ledger", headers=headers) as response:
        assert await response.json() == {"cleared": 4}
    assert len(simulator.ledger) == 0


async def test_control_routes(
    simulator: ProviderSimulator, waha: WahaProvider, http: aiohttp.ClientSession
) -> None:
    base, headers = simulator.base_url, {"X-Api-Key": simulator.settings.api_key}
    async with http.get(f"{base}/_sim/ledger") as response:
        assert response.status == 401  # control routes need the key too
    async with http.put(
        f"{base}/_sim/sessions/sales-09", json={"fail_next": 1, "fail_status": 503}, headers=headers
    ) as response:
        assert response.status == 200
        assert (await response.json())["fail_next"] == 1
    with pytest.raises(ProviderError) as caught:
        await waha.send_text(text(session="sales-09"))
    assert caught.value.status == 503
    async with http.put(
        f"{base}/_sim/sessions/sales-09", json={"fail_next": True}, headers=headers
    ) as response:
        assert response.status == 400
    async with http.post(f"{base}/_sim/sessions/sales-09/ban", headers=headers) as response:
        assert (await response.json())["banned"] is True
    async with http.get(f"{base}/api/sessions/sales-09", headers=headers) as response:
        assert (await response.json())["status"] == "FAILED"
    async with http.post(f"{base}/_sim/sessions/sales-09/reset", headers=headers) as response:
        assert (await response.json())["status"] == "WORKING"
    async with http.put(f"{base}/_sim/settings", json={"read_ack_ms": -1}, headers=headers) as response:
        settings = await response.json()
        assert settings["read_ack_ms"] == -1 and settings["api_key"] == "***"
    async with http.put(f"{base}/_sim/settings", json={"port": 1}, headers=headers) as response:
        assert response.status == 400
    async with http.get(f"{base}/ping") as response:
        assert await response.json() == {"message": "pong"}


async def test_bad_requests_get_waha_shaped_400s(
    simulator: ProviderSimulator, http: aiohttp.ClientSession
) -> None:
    headers = {"X-Api-Key": simulator.settings.api_key}
    async with http.post(
        f"{simulator.base_url}/api/sendText",
        json={"session": "s", "chatId": "nope", "text": "x"},
        headers=headers,
    ) as response:
        body = await response.json()
    assert response.status == 400 and body["error"] == "Bad Request" and isinstance(body["message"], list)
    async with http.post(f"{simulator.base_url}/api/sendText", data=b"{", headers=headers) as response:
        assert response.status == 400
    assert len(simulator.ledger) == 0


async def test_webhook_failures_are_retried_and_never_hurt_sending(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver
) -> None:
    receiver.refuse_next = 2
    await waha.send_text(text())
    await wait_until(lambda: len(receiver.events("message.ack")) == 3)
    assert receiver.refused == 2
    assert simulator.webhooks.stats()["retried"] >= 2

    simulator.update_settings(webhook_url="http://127.0.0.1:9/nowhere")  # nothing listens there
    for _ in range(5):
        await waha.send_text(text())
    await wait_until(lambda: simulator.webhooks.stats()["failed"] >= 1)
    assert len(simulator.ledger) == 6


async def test_without_a_webhook_url_nothing_is_posted(
    receiver: WebhookReceiver, http: aiohttp.ClientSession
) -> None:
    async with run_simulator(server_ack_ms=0) as sim:
        provider = WahaProvider(base_url=sim.base_url, api_key="", session=http, timeout=5)
        await provider.send_text(text())
        await asyncio.sleep(0.1)
        assert sim.webhooks.stats()["delivered"] == 0 and receiver.deliveries == []


async def test_thousands_of_sends_are_all_recorded_once(http: aiohttp.ClientSession) -> None:
    async with run_simulator() as sim:
        provider = WahaProvider(base_url=sim.base_url, api_key="", session=http, timeout=10)
        total, in_flight = 2000, 50
        queue: asyncio.Queue[int] = asyncio.Queue()
        for number in range(total):
            queue.put_nowait(number)

        async def worker() -> None:
            while not queue.empty():
                number = queue.get_nowait()
                client_id = new_client_message_id(f"bulk-{number}")
                await provider.send_text(text(session=f"s{number % 8}", client_id=client_id))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed = time.perf_counter() - started
    assert len(sim.ledger) == total and sim.ledger.duplicates() == {}
    assert total / elapsed > 300, f"only {total / elapsed:.0f} sends/s"


async def test_the_command_line_entry_point() -> None:
    env = {"SIMULATOR_API_KEY": "cli-key", "SIMULATOR_READ_ACK_MS": "-1", "PATH": "/usr/bin:/bin"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "libs.provider_simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode().strip()
        assert line.startswith("provider-simulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{url}/api/sendText",
                json={"session": "a", "chatId": CHAT, "text": "x"},
                headers={"X-Api-Key": "cli-key"},
            ) as response:
                assert response.status == 201
            async with session.get(f"{url}/_sim/settings", headers={"X-Api-Key": "cli-key"}) as response:
                settings: dict[str, Any] = await response.json()
                assert settings["read_ack_ms"] == -1
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0


def test_settings_from_flags_then_environment_then_defaults() -> None:
    environ = {
        "SIMULATOR_PORT": "3100",
        "SIMULATOR_WEBHOOK_URL": "http://gw:8080/webhooks/waha",
        "SIMULATOR_WEBHOOK_SECRET": "s3cret",
        "SIMULATOR_REPLY_PROBABILITY": "0.25",
    }
    settings = parse_settings(["--port", "0", "--api-key", "k"], environ)
    assert (settings.port, settings.api_key, settings.webhook_url, settings.webhook_secret) == (
        0,
        "k",
        "http://gw:8080/webhooks/waha",
        "s3cret",
    )
    assert settings.reply_probability == 0.25 and settings.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        ([], {"SIMULATOR_PORT": "eighty"}),
        (["--reply-probability", "2"], {}),
        (["--webhook-url", "gw:80"], {}),
    ],
)
def test_bad_settings_exit_with_status_2(argv: list[str], environ: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_settings(argv, environ)
    assert caught.value.code == 2
