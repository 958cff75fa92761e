"""Contract: TurboZapProvider sends exactly what TurboZap-api expects and reads its answers/errors."""

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
    TurboZapProvider,
)
from tests.contract.providers.stub import ProviderStub

KEY = "tz-key-abc"
PHONE = "5531991112222"
SENT = {
    "success": True,
    "data": {
        "id": "6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
        "message_id": "3EB0F1E2D3C4B5A69788",
        "status": "sent",
        "timestamp": "2026-11-20T17:02:03Z",
    },
}


def adapter(stub: ProviderStub, http: aiohttp.ClientSession, timeout: float = 5) -> TurboZapProvider:
    return TurboZapProvider(base_url=stub.base_url, api_key=KEY, session=http, timeout=timeout)


def text() -> SendTextRequest:
    return SendTextRequest(instance_ref="sales-05", recipient=PHONE, text="Bom dia")


async def test_send_text(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT)
    assert await adapter(stub, http).send_text(text()) == SentMessage("3EB0F1E2D3C4B5A69788")
    assert (stub.last.method, stub.last.path) == ("POST", "/message/sales-05/text")
    assert stub.last.headers["X-API-Key"] == KEY
    assert stub.last.json == {"to": PHONE, "text": "Bom dia"}


async def test_send_media(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT)
    request = SendMediaRequest(
        instance_ref="sales-05",
        recipient=PHONE,
        kind=MediaKind.IMAGE,
        mimetype="image/jpeg",
        url="https://cdn.example.com/a.jpg",
        caption="Promo",
    )
    await adapter(stub, http).send_media(request)
    assert (stub.last.method, stub.last.path) == ("POST", "/message/sales-05/media")
    assert stub.last.json == {
        "to": PHONE,
        "media_url": "https://cdn.example.com/a.jpg",
        "mime_type": "image/jpeg",
        "caption": "Promo",
    }


async def test_send_media_inline(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT)
    request = SendMediaRequest(
        instance_ref="sales-05",
        recipient=PHONE,
        kind=MediaKind.DOCUMENT,
        mimetype="application/pdf",
        data_base64="JVBERi0=",
        filename="tabela.pdf",
    )
    await adapter(stub, http).send_media(request)
    assert stub.last.json == {
        "to": PHONE,
        "base64": "JVBERi0=",
        "mime_type": "application/pdf",
        "file_name": "tabela.pdf",
    }


async def test_send_voice_note(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT)
    await adapter(stub, http).send_audio(
        SendAudioRequest(instance_ref="sales-05", recipient=PHONE, url="https://cdn.example.com/oi.ogg")
    )
    assert (stub.last.method, stub.last.path) == ("POST", "/message/sales-05/audio")
    assert stub.last.json == {"to": PHONE, "audio_url": "https://cdn.example.com/oi.ogg", "ptt": True}


async def test_send_reaction(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT)
    request = SendReactionRequest(
        instance_ref="sales-05",
        recipient=PHONE,
        message_id="3EB0F1E2D3C4B5A69788",
        emoji="🔥",
        target_from_me=True,
    )
    await adapter(stub, http).send_reaction(request)
    assert (stub.last.method, stub.last.path) == ("POST", "/message/sales-05/reaction")
    assert stub.last.json == {"to": PHONE, "message_id": "3EB0F1E2D3C4B5A69788", "emoji": "🔥"}


async def test_instance_not_connected(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(400, {"success": False, "error": {"message": "Instance is not connected to WhatsApp"}})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.restriction, caught.value.code) == (
        Restriction.DISCONNECTED,
        "instance_disconnected",
    )


async def test_unknown_instance(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(404, {"success": False, "error": {"message": "Instance not found"}})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert caught.value.code == "instance_not_found"


async def test_invalid_recipient(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(400, {"success": False, "error": {"message": "Invalid recipient phone number"}})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.PERMANENT, "invalid_recipient")


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("text", "Failed to send message"),
        ("media", "Failed to send media"),
        ("audio", "Failed to send audio"),
        ("reaction", "Failed to send reaction"),
    ],
)
async def test_the_wrapped_send_failure_is_ambiguous(
    stub: ProviderStub, http: aiohttp.ClientSession, kind: str, message: str
) -> None:
    # message_handler.go (cb1b54b): every WhatsApp error of the send, a 463 included, becomes
    # `response.InternalServerError(c, "Failed to send ...")`; the message may also have left.
    stub.reply(500, {"success": False, "error": {"message": message}})
    provider = adapter(stub, http)
    send = {
        "text": lambda: provider.send_text(text()),
        "media": lambda: provider.send_media(
            SendMediaRequest(
                instance_ref="vendas",
                recipient=PHONE,
                kind=MediaKind.IMAGE,
                mimetype="image/jpeg",
                url="https://cdn.example.com/a.jpg",
            )
        ),
        "audio": lambda: provider.send_audio(
            SendAudioRequest(instance_ref="vendas", recipient=PHONE, url="https://cdn.example.com/a.ogg")
        ),
        "reaction": lambda: provider.send_reaction(
            SendReactionRequest(
                instance_ref="vendas", recipient=PHONE, message_id="3EB0AB", emoji="👍", target_from_me=True
            )
        ),
    }[kind]
    with pytest.raises(ProviderError) as caught:
        await send()
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.AMBIGUOUS, "wrapped_500")
    assert not caught.value.retryable
    assert len(stub.requests) == 1  # never retried inside the adapter either


async def test_failing_to_read_the_instance_is_transient(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    # message_handler.go `getInstanceAndValidate`: a database read before anything is sent.
    stub.reply(500, {"success": False, "error": {"message": "Failed to get instance"}})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.TRANSIENT, "instance_lookup_failed")


async def test_gateway_timeout_is_ambiguous(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(504, text="Gateway Timeout")
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert caught.value.error_class is ErrorClass.AMBIGUOUS


async def test_rate_limited(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(429, {"success": False, "error": {"message": "Too many requests"}})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.retry_after) == (ErrorClass.TRANSIENT, None)


async def test_slow_send_is_ambiguous(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT, delay=1.0)
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http, timeout=0.2).send_text(text())
    assert caught.value.error_class is ErrorClass.AMBIGUOUS


async def test_refused_connection_is_transient(closed_port_url: str, http: aiohttp.ClientSession) -> None:
    provider = TurboZapProvider(base_url=closed_port_url, api_key=KEY, session=http, timeout=2)
    with pytest.raises(ProviderError) as caught:
        await provider.send_text(text())
    assert caught.value.error_class is ErrorClass.TRANSIENT
