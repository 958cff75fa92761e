"""Linking a number through the simulator, over HTTP with the real WAHA adapter's session port: a new
session shows QR codes (a new one every `qr_rotate_s`, each announced by a `session.status` webhook),
the simulated phone scans one and the session connects; the phone can also log out and the account be
banned, each with its webhook, as WAHA reports them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import struct
from typing import Any

import aiohttp
import pytest

from libs.provider_simulator import ProviderSimulator
from libs.providers import (
    SESSION_NOT_FOUND,
    ErrorClass,
    ProviderError,
    Restriction,
    SendTextRequest,
    SessionStatus,
    SessionWebhook,
    WahaProvider,
)
from libs.seedwork.shared_kernel import ConnectionState
from tests.libs.provider_simulator.conftest import API_KEY
from tests.libs.provider_simulator.receiver import WebhookReceiver, wait_until

PHONE_SESSION = "phone-01"
KEY = "the-instance-webhook-key-of-32-chars"
RECIPIENT = "5511987650000"


def statuses(receiver: WebhookReceiver) -> list[str]:
    return [event["payload"]["status"] for event in receiver.events("session.status")]


async def control(
    http: aiohttp.ClientSession, simulator: ProviderSimulator, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"X-Api-Key": API_KEY}
    async with http.post(f"{simulator.base_url}/_sim/sessions/{path}", json=body, headers=headers) as r:
        return r.status, await r.json()


async def scan(http: aiohttp.ClientSession, simulator: ProviderSimulator, code: str | None = None) -> int:
    status, _ = await control(
        http, simulator, f"{PHONE_SESSION}/scan", {} if code is None else {"code": code}
    )
    return status


async def linked(
    waha: WahaProvider, receiver: WebhookReceiver, http: aiohttp.ClientSession, sim: ProviderSimulator
) -> None:
    """A session set up, started and scanned, as the onboarding does it."""
    await waha.set_webhook(PHONE_SESSION, SessionWebhook(url=receiver.url, secret=KEY))
    await waha.start_session(PHONE_SESSION)
    assert await scan(http, sim) == 200
    await wait_until(lambda: "WORKING" in statuses(receiver))


async def test_a_new_number_shows_a_qr_code_and_connects_when_the_phone_scans_it(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver, http: aiohttp.ClientSession
) -> None:
    await waha.set_webhook(PHONE_SESSION, SessionWebhook(url=receiver.url, secret=KEY))
    assert simulator.sessions[PHONE_SESSION].status == "STOPPED"  # created, not started, as WAHA
    assert await waha.start_session(PHONE_SESSION) == SessionStatus(
        ConnectionState.QR_REQUIRED, "SCAN_QR_CODE"
    )
    await wait_until(lambda: statuses(receiver) == ["STARTING", "SCAN_QR_CODE"])
    for delivery in receiver.deliveries:  # signed with the instance's key, as the gateway checks
        expected = hmac.new(KEY.encode(), delivery.raw, hashlib.sha512).hexdigest()
        assert delivery.headers["X-Webhook-Hmac"] == expected
        assert delivery.event["me"] is None  # no account before the scan

    qr = await waha.get_qr(PHONE_SESSION)
    assert qr is not None and qr.raw.startswith("2@") and qr.raw.count(",") == 3
    assert qr.png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", qr.png[16:24])
    assert width == height > 100
    assert await waha.session_status(PHONE_SESSION) == SessionStatus(
        ConnectionState.QR_REQUIRED, "SCAN_QR_CODE"
    )
    with pytest.raises(ProviderError) as refused:  # no sends before the number is linked
        await waha.send_text(SendTextRequest(instance_ref=PHONE_SESSION, recipient=RECIPIENT, text="Olá"))
    assert refused.value.code == "session_needs_qr"

    assert await scan(http, simulator, qr.raw) == 200
    await wait_until(lambda: statuses(receiver)[-1:] == ["WORKING"])
    assert receiver.events("session.status")[-1]["me"]["id"].endswith("@c.us")
    assert await waha.session_status(PHONE_SESSION) == SessionStatus(ConnectionState.CONNECTED, "WORKING")
    assert await waha.get_qr(PHONE_SESSION) is None  # nothing left to scan
    sent = await waha.send_text(SendTextRequest(instance_ref=PHONE_SESSION, recipient=RECIPIENT, text="Olá"))
    assert sent.provider_message_id


async def test_the_qr_code_changes_until_scanned_and_each_new_one_is_announced(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver, http: aiohttp.ClientSession
) -> None:
    simulator.update_settings(qr_rotate_s=0.15)
    await waha.set_webhook(PHONE_SESSION, SessionWebhook(url=receiver.url, secret=KEY))
    await waha.start_session(PHONE_SESSION)
    first = await waha.get_qr(PHONE_SESSION)
    await wait_until(lambda: statuses(receiver).count("SCAN_QR_CODE") >= 3)
    second = await waha.get_qr(PHONE_SESSION)
    assert first is not None and second is not None and first.raw != second.raw
    assert first.png != second.png

    assert await scan(http, simulator, first.raw) == 409  # an expired code links nothing
    current = await waha.get_qr(PHONE_SESSION)
    assert current is not None and await scan(http, simulator, current.raw) == 200
    await wait_until(lambda: statuses(receiver)[-1:] == ["WORKING"])
    shown = statuses(receiver).count("SCAN_QR_CODE")
    await asyncio.sleep(0.4)
    assert statuses(receiver).count("SCAN_QR_CODE") == shown  # no new codes once connected


async def test_linking_with_a_pairing_code_instead(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver, http: aiohttp.ClientSession
) -> None:
    await waha.start_session(PHONE_SESSION)
    code = await waha.request_pairing_code(PHONE_SESSION, RECIPIENT)
    assert len(code.code) == 9 and code.code[4] == "-"
    assert await scan(http, simulator, code.code) == 200  # typed on the phone
    assert simulator.sessions[PHONE_SESSION].status == "WORKING"
    with pytest.raises(ProviderError) as refused:
        await waha.request_pairing_code(PHONE_SESSION, RECIPIENT)
    assert (refused.value.error_class, refused.value.status) == (ErrorClass.PERMANENT, 422)


async def test_the_phone_logging_out_fails_the_session_until_a_new_scan(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver, http: aiohttp.ClientSession
) -> None:
    await linked(waha, receiver, http, simulator)
    status, body = await control(http, simulator, f"{PHONE_SESSION}/logout")
    assert (status, body["paired"], body["banned"]) == (200, False, False)
    await wait_until(lambda: statuses(receiver)[-1:] == ["FAILED"])  # WAHA NOWEB on a logout
    with pytest.raises(ProviderError) as refused:
        await waha.send_text(SendTextRequest(instance_ref=PHONE_SESSION, recipient=RECIPIENT, text="Olá"))
    assert refused.value.restriction is Restriction.DISCONNECTED
    # Connecting again starts over with a QR code.
    assert (await waha.start_session(PHONE_SESSION)).state is ConnectionState.QR_REQUIRED
    assert await waha.get_qr(PHONE_SESSION) is not None
    assert await scan(http, simulator) == 200
    assert (await waha.session_status(PHONE_SESSION)).state is ConnectionState.CONNECTED


async def test_a_banned_number_does_not_come_back(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver, http: aiohttp.ClientSession
) -> None:
    await linked(waha, receiver, http, simulator)
    status, body = await control(http, simulator, f"{PHONE_SESSION}/ban")
    assert (status, body["banned"]) == (200, True)
    await wait_until(lambda: statuses(receiver)[-1:] == ["FAILED"])
    restarted = await waha.start_session(PHONE_SESSION)
    assert restarted == SessionStatus(ConnectionState.DISCONNECTED, "FAILED")
    assert await scan(http, simulator) == 409  # nothing to scan


async def test_logging_out_through_the_api_shows_a_new_qr_code(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver, http: aiohttp.ClientSession
) -> None:
    await linked(waha, receiver, http, simulator)
    await waha.logout_session(PHONE_SESSION)
    await wait_until(lambda: statuses(receiver)[-3:] == ["STOPPED", "STARTING", "SCAN_QR_CODE"])
    assert (await waha.session_status(PHONE_SESSION)).state is ConnectionState.QR_REQUIRED
    assert await waha.get_qr(PHONE_SESSION) is not None


async def test_deleting_a_session(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver, http: aiohttp.ClientSession
) -> None:
    await linked(waha, receiver, http, simulator)
    await waha.delete_session(PHONE_SESSION)
    await wait_until(lambda: statuses(receiver)[-1:] == ["STOPPED"])
    assert PHONE_SESSION not in simulator.sessions
    with pytest.raises(ProviderError) as gone:
        await waha.session_status(PHONE_SESSION)
    assert gone.value.code == SESSION_NOT_FOUND
    await waha.delete_session(PHONE_SESSION)  # again: nothing to do
    await waha.logout_session(PHONE_SESSION)


async def test_the_qr_route_speaks_waha(
    simulator: ProviderSimulator, waha: WahaProvider, http: aiohttp.ClientSession
) -> None:
    base, headers = simulator.base_url, {"X-Api-Key": API_KEY}
    async with http.get(f"{base}/api/{PHONE_SESSION}/auth/qr", headers=headers) as r:
        assert r.status == 404  # unknown session
    await waha.start_session(PHONE_SESSION)
    async with http.get(f"{base}/api/{PHONE_SESSION}/auth/qr", headers=headers) as r:
        assert (r.status, r.content_type) == (200, "image/png")  # the image itself by default
        assert (await r.read()).startswith(b"\x89PNG")
    async with http.post(f"{base}/api/sessions", json={"name": PHONE_SESSION}, headers=headers) as r:
        assert r.status == 422  # exists
    simulator.scan(PHONE_SESSION)
    async with http.get(
        f"{base}/api/{PHONE_SESSION}/auth/qr", params={"format": "raw"}, headers=headers
    ) as r:
        assert r.status == 422
        assert await r.json() == {
            "error": "Session status is not as expected. Try again later or restart the session",
            "session": PHONE_SESSION,
            "status": "WORKING",
            "expected": ["SCAN_QR_CODE"],
        }
    assert (await control(http, simulator, "nobody/scan"))[0] == 404
    assert (await control(http, simulator, f"{PHONE_SESSION}/scan", {"code": 7}))[0] == 400


async def test_sessions_first_used_by_a_send_are_still_linked_and_working(
    simulator: ProviderSimulator, waha: WahaProvider
) -> None:
    await waha.send_text(SendTextRequest(instance_ref="sales-07", recipient=RECIPIENT, text="Olá"))
    assert (simulator.sessions["sales-07"].status, simulator.sessions["sales-07"].paired) == ("WORKING", True)
    assert (await waha.start_session("sales-07")).state is ConnectionState.CONNECTED
