"""The simulator's provider quirks (WAHA routes): each one behaves like the provider it imitates, and the
ledger says whether the message left."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from libs.provider_simulator import ProviderSimulator
from libs.providers import (
    ErrorClass,
    ProviderError,
    Restriction,
    SendTextRequest,
    WahaProvider,
    new_client_message_id,
)
from tests.libs.provider_simulator.receiver import WebhookReceiver, wait_until

PHONE = "5511987650000"
CHAT = f"{PHONE}@c.us"
SESSION = "sales-03"


class Api:
    """Raw HTTP against the simulator, with its API key: the status and the exact body matter here."""

    def __init__(self, simulator: ProviderSimulator, http: aiohttp.ClientSession) -> None:
        self.base = simulator.base_url
        self.http = http
        self.headers = {"X-Api-Key": simulator.settings.api_key}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        async with self.http.request(method, self.base + path, json=body, headers=self.headers) as response:
            return response.status, await response.read()

    async def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, self.base + path, json=body, headers=self.headers) as response:
            return response.status, await response.json(content_type=None)

    async def send_text(self, client_id: str | None = None, session: str = SESSION) -> tuple[int, bytes]:
        body: dict[str, Any] = {"session": session, "chatId": CHAT, "text": "Olá"}
        if client_id is not None:
            body["id"] = client_id
        return await self.call("POST", "/api/sendText", body)

    async def configure(self, session: str = SESSION, **behaviour: Any) -> tuple[int, Any]:
        return await self.json("PUT", f"/_sim/sessions/{session}", behaviour)


@pytest.fixture
def api(simulator: ProviderSimulator, http: aiohttp.ClientSession) -> Api:
    return Api(simulator, http)


async def test_ignore_client_id_sends_under_its_own_id_and_cannot_find_ours(
    simulator: ProviderSimulator, waha: WahaProvider, api: Api
) -> None:
    status, _ = await api.configure(ignore_client_id=True)
    assert status == 200
    ours = new_client_message_id("intent-ignored")
    sent = await waha.send_text(
        SendTextRequest(instance_ref=SESSION, recipient=PHONE, text="Olá", client_message_id=ours)
    )
    assert ours not in sent.provider_message_id and sent.provider_message_id.startswith(f"true_{CHAT}_")
    # The ledger still knows which intent it was, so a duplicate send would still be counted.
    [entry] = simulator.ledger.entries
    assert (entry.client_id, entry.provider_id) == (ours, sent.provider_message_id)
    status, _ = await api.call("GET", f"/api/{SESSION}/chats/all/messages/{ours}")
    assert status == 404
    status, found = await api.json("GET", f"/api/{SESSION}/chats/all/messages/{sent.provider_message_id}")
    assert status == 200 and found["id"] == sent.provider_message_id


async def test_lid_filing_hides_a_sent_message_from_the_chat_lookup_but_not_from_chats_all(
    simulator: ProviderSimulator, api: Api
) -> None:
    await api.configure(lid_filing=True)
    ours = new_client_message_id("intent-lid")
    status, raw = await api.send_text(ours)
    assert status == 201
    sent = json.loads(raw)
    lid = sent["to"]
    assert lid.endswith("@lid") and sent["id"] == f"true_{lid}_{ours}"
    # A stable lid per recipient: the next message to the same person is filed under the same chat.
    _, again = await api.send_text(new_client_message_id("intent-lid-2"))
    assert json.loads(again)["to"] == lid

    status, body = await api.json("GET", f"/api/{SESSION}/chats/{CHAT}/messages/true_{CHAT}_{ours}")
    assert status == 404 and body["message"] == "Message not found"
    status, found = await api.json("GET", f"/api/{SESSION}/chats/all/messages/{ours}")
    assert status == 200 and found["id"] == sent["id"] and found["fromMe"] is True
    status, found = await api.json("GET", f"/api/{SESSION}/chats/{lid}/messages/{sent['id']}")
    assert status == 200
    assert [entry.chat_id for entry in simulator.ledger.entries] == [CHAT, CHAT]


async def test_chats_all_finds_a_kept_id_bare_or_serialized_and_misses_what_was_never_sent(api: Api) -> None:
    ours = new_client_message_id("intent-all")
    await api.send_text(ours)
    for message_id in (ours, f"true_{CHAT}_{ours}"):
        status, found = await api.json("GET", f"/api/{SESSION}/chats/all/messages/{message_id}")
        assert status == 200 and found["id"] == f"true_{CHAT}_{ours}"
    status, body = await api.json(
        "GET", f"/api/{SESSION}/chats/all/messages/{new_client_message_id('never')}"
    )
    assert (status, body["message"]) == (404, "Message not found")


async def test_empty_body_next_accepts_records_and_acks_but_answers_nothing(
    simulator: ProviderSimulator, api: Api, receiver: WebhookReceiver
) -> None:
    await api.configure(empty_body_next=1)
    ours = new_client_message_id("intent-empty")
    status, raw = await api.send_text(ours)
    assert (status, raw) == (201, b"")
    assert [entry.client_id for entry in simulator.ledger.entries] == [ours]
    await wait_until(lambda: len(receiver.events("message.ack")) == 3)
    assert {event["payload"]["id"] for event in receiver.events("message.ack")} == {f"true_{CHAT}_{ours}"}
    status, raw = await api.send_text()
    assert status == 201 and raw  # only the next N


async def test_error_after_send_answers_500_but_the_message_left(
    simulator: ProviderSimulator, api: Api, receiver: WebhookReceiver
) -> None:
    await api.configure(error_after_send_next=1)
    ours = new_client_message_id("intent-5xx-after")
    status, body = await api.json(
        "POST", "/api/sendText", {"session": SESSION, "chatId": CHAT, "text": "x", "id": ours}
    )
    assert status == 500 and body["statusCode"] == 500 and "message" in body["exception"]
    assert [entry.client_id for entry in simulator.ledger.entries] == [ours]
    await wait_until(lambda: len(receiver.events("message.ack")) == 3)
    status, _ = await api.call("GET", f"/api/{SESSION}/chats/all/messages/{ours}")
    assert status == 200


async def test_error_before_send_is_fail_next_and_nothing_leaves(
    simulator: ProviderSimulator, api: Api
) -> None:
    status, control = await api.configure(error_before_send_next=1)
    assert control["fail_next"] == 1
    status, body = await api.json("POST", "/api/sendText", {"session": SESSION, "chatId": CHAT, "text": "x"})
    assert status == 500 and "exception" in body
    assert len(simulator.ledger) == 0


async def test_wrapped_500_hides_a_463_sends_nothing_and_starts_the_timelock(
    simulator: ProviderSimulator, waha: WahaProvider, api: Api, receiver: WebhookReceiver
) -> None:
    await api.configure(wrapped_500_next=1)
    status, body = await api.json("POST", "/api/sendText", {"session": SESSION, "chatId": CHAT, "text": "x"})
    assert (status, body) == (500, {"success": False, "error": {"message": "Failed to send message"}})
    assert len(simulator.ledger) == 0
    _, session = await api.json("GET", f"/api/sessions/{SESSION}")
    assert session["me"]["reachoutTimelock"]["isActive"] is True
    await wait_until(lambda: bool(receiver.events("session.status")))
    [event] = receiver.events("session.status")
    assert event["payload"]["data"]["reachoutTimelock"]["isActive"] is True
    # The adapter sees a 500 that proves nothing, never a restriction it could name.
    await api.configure(wrapped_500_next=1)
    with pytest.raises(ProviderError) as caught:
        await waha.send_text(SendTextRequest(instance_ref=SESSION, recipient=PHONE, text="x"))
    assert caught.value.status == 500 and caught.value.restriction is not Restriction.REACHOUT_TIMELOCK
    status, _ = await api.send_text()
    assert status == 201 and len(simulator.ledger) == 1


async def test_wrapped_500_names_the_route_as_turbozap_does(api: Api) -> None:
    await api.configure(wrapped_500_next=1)
    file = {"mimetype": "image/jpeg", "data": "/9j/4AA="}
    status, body = await api.json(
        "POST", "/api/sendImage", {"session": SESSION, "chatId": CHAT, "file": file}
    )
    assert (status, body["error"]["message"]) == (500, "Failed to send media")


async def test_lookup_store_missing_answers_400_as_noweb_without_its_store(api: Api) -> None:
    ours = new_client_message_id("intent-store")
    await api.send_text(ours)
    await api.configure(lookup_store_missing=True)
    for chat, message_id in (("all", ours), (CHAT, f"true_{CHAT}_{ours}")):
        status, body = await api.json("GET", f"/api/{SESSION}/chats/{chat}/messages/{message_id}")
        assert status == 400 and body["error"] == "Bad Request"
        assert body["message"].startswith('Enable NOWEB store "config.noweb.store.enabled=True"')
    await api.configure(lookup_store_missing=False)
    status, _ = await api.call("GET", f"/api/{SESSION}/chats/all/messages/{ours}")
    assert status == 200


async def test_capping_route_and_me_follow_the_control(api: Api) -> None:
    await api.send_text()
    status, capping = await api.json("GET", f"/api/sessions/{SESSION}/capping")
    assert status == 200
    assert capping == {
        "cappingStatus": "NONE",
        "totalQuota": -1,
        "usedQuota": 0,
        "cycleStart": None,
        "cycleEnd": None,
        "mvStatus": None,
        "oteStatus": None,
    }
    status, control = await api.configure(capping_status="SECOND_WARNING", quota_used=900, quota_total=1000)
    assert status == 200 and control["capping"]["cappingStatus"] == "SECOND_WARNING"
    _, capping = await api.json("GET", f"/api/sessions/{SESSION}/capping")
    assert (capping["cappingStatus"], capping["usedQuota"], capping["totalQuota"]) == (
        "SECOND_WARNING",
        900,
        1000,
    )
    _, session = await api.json("GET", f"/api/sessions/{SESSION}")
    assert session["me"]["messageCapping"] == capping
    status, _ = await api.configure(capping_status="ALMOST")
    assert status == 400
    status, _ = await api.configure(quota_total=-2)
    assert status == 400
    status, _ = await api.call("GET", "/api/sessions/nobody/capping")
    assert status == 404


async def test_me_carries_reachout_timelock_null_until_a_463(api: Api) -> None:
    await api.send_text()
    _, session = await api.json("GET", f"/api/sessions/{SESSION}")
    assert session["me"]["reachoutTimelock"] is None and session["me"]["messageCapping"] is None
    await api.configure(timelock_next=1)
    status, _ = await api.send_text()
    assert status == 500
    _, session = await api.json("GET", f"/api/sessions/{SESSION}")
    timelock = session["me"]["reachoutTimelock"]
    assert (
        set(timelock) == {"enforcementType", "isActive", "timeEnforcementEnds"}
        and timelock["isActive"] is True
    )


async def test_timelock_ack_next_still_accepts_then_fails_by_webhook(
    simulator: ProviderSimulator, waha: WahaProvider, receiver: WebhookReceiver
) -> None:
    simulator.configure_session(SESSION, timelock_ack_next=1)
    sent = await waha.send_text(SendTextRequest(instance_ref=SESSION, recipient=PHONE, text="x"))
    assert len(simulator.ledger) == 1
    await wait_until(lambda: bool(receiver.events("message.ack")))
    [ack] = receiver.events("message.ack")
    assert ack["payload"]["id"] == sent.provider_message_id
    assert (ack["payload"]["ack"], ack["payload"]["error"]["code"]) == (-1, "463")


async def test_counters_reset_with_the_session_but_modes_stay(simulator: ProviderSimulator, api: Api) -> None:
    await api.configure(lid_filing=True, empty_body_next=2, error_after_send_next=1, wrapped_500_next=3)
    status, control = await api.json("POST", f"/_sim/sessions/{SESSION}/reset")
    assert status == 200
    assert (control["empty_body_next"], control["error_after_send_next"], control["wrapped_500_next"]) == (
        0,
        0,
        0,
    )
    assert control["lid_filing"] is True
    status, _ = await api.configure(empty_body_next=-1)
    assert status == 400
    status, _ = await api.configure(lid_filing="yes")
    assert status == 400


async def test_quirks_are_recognised_by_the_adapter_as_they_would_be_from_waha(
    simulator: ProviderSimulator, waha: WahaProvider, api: Api
) -> None:
    """A 500 after the message left is, to the adapter, a 500 like any other: only the ledger knows."""
    await api.configure(error_after_send_next=1)
    with pytest.raises(ProviderError) as caught:
        await waha.send_text(SendTextRequest(instance_ref=SESSION, recipient=PHONE, text="x"))
    assert caught.value.status == 500 and caught.value.error_class in (
        ErrorClass.TRANSIENT,
        ErrorClass.AMBIGUOUS,
    )
    assert len(simulator.ledger) == 1
