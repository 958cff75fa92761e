"""Contract: WuzapiProvider sends exactly what wuzapi expects (token header, Phone/Body/Id, data URLs)."""

from __future__ import annotations

import aiohttp
import pytest

from libs.providers import (
    ErrorClass,
    MediaKind,
    ProviderError,
    Restriction,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    SentMessage,
    WuzapiProvider,
)
from tests.contract.providers.stub import ProviderStub

TOKEN = "user-token-1234ABCD"
PHONE = "5521998887777"
MESSAGE_ID = "90B2F8B13FAC8A9CF6B06E99C7834DC5"
SENT = {
    "code": 200,
    "data": {"Details": "Sent", "Id": MESSAGE_ID, "Timestamp": "2026-11-20T14:05:01-03:00"},
    "success": True,
}


def adapter(stub: ProviderStub, http: aiohttp.ClientSession, timeout: float = 5) -> WuzapiProvider:
    return WuzapiProvider(base_url=stub.base_url, api_key=TOKEN, session=http, timeout=timeout)


def text(**overrides: str) -> SendTextRequest:
    return SendTextRequest(**{"instance_ref": "sales-04", "recipient": PHONE, "text": "Oi", **overrides})


async def test_send_text_with_our_own_id(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT)
    sent = await adapter(stub, http).send_text(text(client_message_id=MESSAGE_ID))
    assert sent == SentMessage(MESSAGE_ID)
    assert (stub.last.method, stub.last.path) == ("POST", "/chat/send/text")
    assert stub.last.headers["token"] == TOKEN
    assert stub.last.json == {"Phone": PHONE, "Body": "Oi", "Id": MESSAGE_ID}


async def test_send_text_without_an_id(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT)
    await adapter(stub, http).send_text(text())
    assert stub.last.json == {"Phone": PHONE, "Body": "Oi"}


async def test_send_image_as_data_url(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT)
    request = SendMediaRequest(
        instance_ref="sales-04",
        recipient=PHONE,
        kind=MediaKind.IMAGE,
        mimetype="image/jpeg",
        data_base64="/9j/4AA=",
        caption="Olha",
    )
    await adapter(stub, http).send_media(request)
    assert (stub.last.method, stub.last.path) == ("POST", "/chat/send/image")
    assert stub.last.json == {"Phone": PHONE, "Image": "data:image/jpeg;base64,/9j/4AA=", "Caption": "Olha"}


async def test_send_document(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT)
    request = SendMediaRequest(
        instance_ref="sales-04",
        recipient=PHONE,
        kind=MediaKind.DOCUMENT,
        mimetype="application/pdf",
        data_base64="JVBERi0=",
        filename="tabela.pdf",
    )
    await adapter(stub, http).send_media(request)
    assert stub.last.path == "/chat/send/document"
    assert stub.last.json == {
        "Phone": PHONE,
        "Document": "data:application/pdf;base64,JVBERi0=",
        "FileName": "tabela.pdf",
    }


async def test_media_by_url_is_refused_before_any_call(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    request = SendMediaRequest(
        instance_ref="sales-04",
        recipient=PHONE,
        kind=MediaKind.IMAGE,
        mimetype="image/jpeg",
        url="https://cdn.example.com/a.jpg",
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_media(request)
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.PERMANENT, "unsupported_media_source")
    assert stub.requests == []


async def test_send_audio(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT)
    await adapter(stub, http).send_audio(
        SendAudioRequest(instance_ref="sales-04", recipient=PHONE, data_base64="T2dnUw==")
    )
    assert (stub.last.method, stub.last.path) == ("POST", "/chat/send/audio")
    assert stub.last.json == {"Phone": PHONE, "Audio": "data:audio/ogg;base64,T2dnUw=="}


async def test_media_and_audio_are_sent_under_our_own_id(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(200, SENT)
    provider = adapter(stub, http)
    await provider.send_media(
        SendMediaRequest(
            instance_ref="sales-04",
            recipient=PHONE,
            kind=MediaKind.DOCUMENT,
            mimetype="application/pdf",
            data_base64="JVBERi0=",
            client_message_id=MESSAGE_ID,
        )
    )
    await provider.send_audio(
        SendAudioRequest(
            instance_ref="sales-04", recipient=PHONE, data_base64="T2dnUw==", client_message_id=MESSAGE_ID
        )
    )
    assert [(r.path, r.json["Id"]) for r in stub.requests] == [
        ("/chat/send/document", MESSAGE_ID),
        ("/chat/send/audio", MESSAGE_ID),
    ]


async def test_react_to_our_own_message(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT)
    request = SendReactionRequest(
        instance_ref="sales-04",
        recipient=PHONE,
        message_id="069EDE53E81CB5A4",
        emoji="❤️",
        target_from_me=True,
    )
    await adapter(stub, http).send_reaction(request)
    assert (stub.last.method, stub.last.path) == ("POST", "/chat/react")
    assert stub.last.json == {"Phone": PHONE, "Body": "❤️", "Id": "me:069EDE53E81CB5A4"}


async def test_react_to_their_message(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT)
    request = SendReactionRequest(
        instance_ref="sales-04", recipient=PHONE, message_id="AAF1B2C3", emoji="👍", target_from_me=False
    )
    await adapter(stub, http).send_reaction(request)
    assert stub.last.json["Id"] == "AAF1B2C3"


async def test_no_session(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(500, {"code": 500, "error": "no session", "success": False})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.restriction, caught.value.code) == (Restriction.DISCONNECTED, "no_session")


async def test_error_463_from_whatsmeow(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(
        500, {"code": 500, "error": "error sending message: server returned error 463", "success": False}
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert caught.value.restriction is Restriction.REACHOUT_TIMELOCK


async def test_unknown_token(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(401, {"code": 401, "error": "unauthorized", "success": False})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert caught.value.restriction is Restriction.UNAUTHORIZED
    assert TOKEN not in str(caught.value)


async def test_bad_payload_is_permanent(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(400, {"code": 400, "error": "missing Phone in Payload", "success": False})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.PERMANENT, "http_400")


async def test_other_send_failure_is_transient(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(
        500, {"code": 500, "error": "error sending message: context deadline exceeded", "success": False}
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert caught.value.error_class is ErrorClass.TRANSIENT


async def test_slow_send_is_ambiguous(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT, delay=1.0)
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http, timeout=0.2).send_text(text(client_message_id=MESSAGE_ID))
    assert caught.value.error_class is ErrorClass.AMBIGUOUS


async def test_capabilities(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    provider = adapter(stub, http)
    assert provider.capabilities.supports_client_message_id
    assert not provider.capabilities.supports_lookup
