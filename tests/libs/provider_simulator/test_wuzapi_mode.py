"""wuzapi mode: the simulator answers wuzapi's API (token auth, its bodies, checks and answers), through the
real WuzapiProvider and raw HTTP; every accepted send lands in the same ledger with its type."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from libs.provider_simulator import ProviderSimulator
from libs.providers import (
    MediaKind,
    ProviderError,
    Restriction,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    WuzapiProvider,
    new_client_message_id,
)
from tests.libs.provider_simulator.receiver import WebhookReceiver, wait_until

PHONE = "5511987650000"
JID = f"{PHONE}@s.whatsapp.net"
SESSION = "sales-05"  # the token a wuzapi user would have is, here, its session's name
JPEG = "/9j/4AAQSkZJRgABAQ=="
OGG = "T2dnUwACAAAAAAAAAAA="
PDF = "JVBERi0xLjQK"
DOC_ID = new_client_message_id("intent-wuz-document")


@pytest.fixture
def wuzapi(simulator: ProviderSimulator, http: aiohttp.ClientSession) -> WuzapiProvider:
    return WuzapiProvider(base_url=simulator.base_url, api_key=SESSION, session=http, timeout=5)


class Wuz:
    """Raw HTTP with wuzapi's `token` header."""

    def __init__(self, simulator: ProviderSimulator, http: aiohttp.ClientSession) -> None:
        self.base, self.http = simulator.base_url, http

    async def post(self, path: str, body: Any, token: str | None = SESSION) -> tuple[int, Any]:
        headers = {} if token is None else {"Token": token}
        data = body if isinstance(body, bytes) else None
        payload = None if isinstance(body, bytes) else body
        async with self.http.post(self.base + path, json=payload, data=data, headers=headers) as response:
            raw = await response.read()
            return response.status, (await response.json(content_type=None)) if raw else None

    async def get(self, path: str, token: str = SESSION) -> tuple[int, Any]:
        async with self.http.get(self.base + path, headers={"Token": token}) as response:
            return response.status, await response.json(content_type=None)


@pytest.fixture
def wuz(simulator: ProviderSimulator, http: aiohttp.ClientSession) -> Wuz:
    return Wuz(simulator, http)


def media(kind: MediaKind, mimetype: str, data: str, **extra: Any) -> SendMediaRequest:
    return SendMediaRequest(
        instance_ref=SESSION, recipient=PHONE, kind=kind, mimetype=mimetype, data_base64=data, **extra
    )


async def test_text_keeps_our_id_and_answers_in_wuzapis_shape(
    simulator: ProviderSimulator, wuzapi: WuzapiProvider, wuz: Wuz, receiver: WebhookReceiver
) -> None:
    ours = new_client_message_id("intent-wuz-text")
    sent = await wuzapi.send_text(
        SendTextRequest(instance_ref=SESSION, recipient=PHONE, text="Olá", client_message_id=ours)
    )
    assert sent.provider_message_id == ours
    [entry] = simulator.ledger.entries
    assert (entry.api, entry.session, entry.chat_id, entry.kind, entry.client_id) == (
        "wuzapi",
        SESSION,
        JID,
        "text",
        ours,
    )
    status, body = await wuz.post("/chat/send/text", {"Phone": PHONE, "Body": "oi", "Id": "CUSTOM1"})
    assert status == 200 and body["code"] == 200 and body["success"] is True
    assert set(body["data"]) == {"Details", "Id", "Timestamp"}
    assert (body["data"]["Details"], body["data"]["Id"]) == ("Sent", "CUSTOM1")
    # Acks flow as for any accepted send (WAHA-shaped webhooks).
    await wait_until(lambda: len(receiver.events("message.ack")) == 6)


async def test_image_document_and_voice_are_sent_and_recorded_with_their_type(
    simulator: ProviderSimulator, wuzapi: WuzapiProvider
) -> None:
    image = await wuzapi.send_media(media(MediaKind.IMAGE, "image/jpeg", JPEG, caption="promo"))
    document = await wuzapi.send_media(
        media(MediaKind.DOCUMENT, "application/pdf", PDF, filename="proposta.pdf", client_message_id=DOC_ID)
    )
    voice = await wuzapi.send_audio(SendAudioRequest(instance_ref=SESSION, recipient=PHONE, data_base64=OGG))
    video = await wuzapi.send_media(media(MediaKind.VIDEO, "video/mp4", "AAAAGGZ0eXBtcDQy"))
    assert all(sent.provider_message_id for sent in (image, document, voice, video))
    assert document.provider_message_id == DOC_ID
    entries = simulator.ledger.entries
    assert [entry.kind for entry in entries] == ["image", "document", "voice", "video"]
    assert entries[0].details["mimetype"] == "image/jpeg"
    assert entries[1].details == {"mimetype": "application/pdf", "filename": "proposta.pdf", "bytes": "9"}
    assert entries[2].details["mimetype"] == "audio/ogg; codecs=opus"
    assert simulator.ledger.summary(include_entries=False)["by_api"] == {"wuzapi": 4}


async def test_reaction_and_its_removal(
    simulator: ProviderSimulator, wuzapi: WuzapiProvider, wuz: Wuz
) -> None:
    await wuzapi.send_reaction(
        SendReactionRequest(
            instance_ref=SESSION, recipient=PHONE, message_id="3EB0TARGET", emoji="👍", target_from_me=True
        )
    )
    await wuzapi.send_reaction(
        SendReactionRequest(
            instance_ref=SESSION, recipient=PHONE, message_id="3EB0TARGET", emoji="", target_from_me=True
        )
    )
    first, removal = simulator.ledger.entries
    assert first.kind == removal.kind == "reaction"
    assert first.details == {"target": "3EB0TARGET", "from_me": "true", "reaction": "👍"}
    assert removal.details["reaction"] == ""  # "remove" sends an empty reaction
    # wuzapi answers with the target's id: the reaction goes out under it.
    status, body = await wuz.post("/chat/react", {"Phone": PHONE, "Body": "❤️", "Id": "me:3EB0OTHER"})
    assert status == 200 and body["data"]["Id"] == "3EB0OTHER"


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        (
            "/chat/send/document",
            {"Phone": PHONE, "Document": f"data:application/pdf;base64,{PDF}", "FileName": "a.pdf"},
            'Document data should start with "data:application/octet-stream;base64,"',
        ),
        (
            "/chat/send/document",
            {"Phone": PHONE, "Document": f"data:application/octet-stream;base64,{PDF}"},
            "Missing FileName in Payload",
        ),
        (
            "/chat/send/image",
            {"Phone": PHONE, "Image": "https://cdn.example.com/a.jpg"},
            'Image data should start with "data:image/png;base64,"',
        ),
        (
            "/chat/send/image",
            {"Phone": PHONE, "Image": "data:image/jpeg;base64,not base64!"},
            "Could not decode base64 encoded data from payload",
        ),
        (
            "/chat/send/audio",
            {"Phone": PHONE, "Audio": f"data:audio/mpeg;base64,{OGG}"},
            'Audio data should start with "data:audio/ogg;base64,"',
        ),
        (
            "/chat/send/video",
            {"Phone": PHONE, "Video": "https://cdn.example.com/a.mp4"},
            'Data should start with "data:mime/type;base64,"',
        ),
        ("/chat/send/text", {"Body": "oi"}, "Missing Phone in Payload"),
        ("/chat/send/text", {"Phone": PHONE}, "Missing Body in Payload"),
        ("/chat/send/text", {"Phone": "not-a-phone", "Body": "oi"}, "Could not parse Phone"),
        ("/chat/send/text", {"Phone": PHONE, "Body": 7}, "Could not decode Payload"),
        ("/chat/send/text", b"{", "Could not decode Payload"),
        ("/chat/send/image", {"Phone": PHONE}, "Missing Image in Payload"),
        ("/chat/react", {"Phone": PHONE, "Body": "👍"}, "Missing Id in Payload"),
        ("/chat/react", {"Phone": PHONE, "Id": "me:X"}, "Missing Body in Payload"),
    ],
)
async def test_wrong_bodies_are_refused_as_wuzapi_refuses_them(
    simulator: ProviderSimulator, wuz: Wuz, path: str, body: Any, error: str
) -> None:
    status, answer = await wuz.post(path, body)
    assert (status, answer) == (400, {"code": 400, "error": error, "success": False})
    assert len(simulator.ledger) == 0


async def test_token_auth_and_token_binding(simulator: ProviderSimulator, wuz: Wuz) -> None:
    status, answer = await wuz.post("/chat/send/text", {"Phone": PHONE, "Body": "oi"}, token=None)
    assert (status, answer) == (401, {"code": 401, "error": "Unauthorized", "success": False})
    status, _ = await wuz.post("/chat/send/text", {"Phone": PHONE, "Body": "oi"}, token="not a name!")
    assert status == 401
    simulator.configure_session("sales-07", wuzapi_token="f3a9c1d2-user-token")
    status, _ = await wuz.post("/chat/send/text", {"Phone": PHONE, "Body": "oi"}, token="f3a9c1d2-user-token")
    assert status == 200
    assert [entry.session for entry in simulator.ledger.entries] == ["sales-07"]


async def test_session_status_and_a_banned_session(
    simulator: ProviderSimulator, wuzapi: WuzapiProvider, wuz: Wuz
) -> None:
    status, body = await wuz.get("/session/status")
    assert (status, body) == (
        200,
        {"code": 200, "data": {"Connected": True, "LoggedIn": True}, "success": True},
    )
    simulator.ban(SESSION)
    _, body = await wuz.get("/session/status")
    assert body["data"] == {"Connected": False, "LoggedIn": False}
    with pytest.raises(ProviderError) as caught:
        await wuzapi.send_text(SendTextRequest(instance_ref=SESSION, recipient=PHONE, text="oi"))
    assert caught.value.restriction is Restriction.DISCONNECTED
    assert len(simulator.ledger) == 0


async def test_quirks_apply_to_wuzapi_sends(
    simulator: ProviderSimulator, wuzapi: WuzapiProvider, wuz: Wuz
) -> None:
    text = {"Phone": PHONE, "Body": "oi", "Id": "3EB0QUIRK1"}
    simulator.configure_session(SESSION, timelock_next=1)
    with pytest.raises(ProviderError) as caught:
        await wuzapi.send_text(SendTextRequest(instance_ref=SESSION, recipient=PHONE, text="oi"))
    assert caught.value.restriction is Restriction.REACHOUT_TIMELOCK
    assert len(simulator.ledger) == 0

    simulator.configure_session(SESSION, wrapped_500_next=1)
    status, body = await wuz.post("/chat/send/text", text)
    assert (status, body) == (500, {"success": False, "error": {"message": "Failed to send message"}})
    assert len(simulator.ledger) == 0

    simulator.configure_session(SESSION, error_after_send_next=1)
    status, body = await wuz.post("/chat/send/text", text)
    assert status == 500 and body["success"] is False and body["error"].startswith("Error sending message")
    assert len(simulator.ledger) == 1  # it left

    simulator.configure_session(SESSION, empty_body_next=1)
    status, body = await wuz.post("/chat/send/text", {**text, "Id": "3EB0QUIRK2"})
    assert (status, body) == (200, None)
    assert len(simulator.ledger) == 2

    simulator.configure_session(SESSION, ignore_client_id=True)
    status, body = await wuz.post("/chat/send/text", {**text, "Id": "3EB0QUIRK3"})
    assert status == 200 and body["data"]["Id"] != "3EB0QUIRK3"
    assert simulator.ledger.entries[-1].client_id == "3EB0QUIRK3"

    simulator.configure_session(SESSION, fail_next=1, fail_status=429)
    status, body = await wuz.post("/chat/send/text", text)
    assert (status, body["error"]) == (429, "simulated transient failure")
    assert len(simulator.ledger) == 3


async def test_a_wuzapi_send_can_be_looked_up_through_waha_routes(
    simulator: ProviderSimulator, wuz: Wuz
) -> None:
    """The same session behind both APIs: tests can check a wuzapi send was filed as any other."""
    await wuz.post("/chat/send/text", {"Phone": PHONE, "Body": "oi", "Id": "3EB0LOOKUP"})
    headers = {"X-Api-Key": simulator.settings.api_key}
    async with wuz.http.get(
        f"{simulator.base_url}/api/{SESSION}/chats/all/messages/3EB0LOOKUP", headers=headers
    ) as response:
        assert response.status == 200
        assert (await response.json())["to"] == JID
