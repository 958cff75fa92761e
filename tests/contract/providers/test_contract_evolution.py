"""Contract: EvolutionProvider sends exactly what Evolution API 2.x expects and reads its answers/errors."""

from __future__ import annotations

import aiohttp
import pytest

from libs.providers import (
    ErrorClass,
    EvolutionProvider,
    MediaKind,
    ProviderError,
    Restriction,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    SentMessage,
)
from tests.contract.providers.stub import ProviderStub

KEY = "evo-global-key-123"
PHONE = "5511987654321"
SENT = {
    "key": {"remoteJid": f"{PHONE}@s.whatsapp.net", "fromMe": True, "id": "BAE5F2A1C3D4E5F6"},
    "message": {"conversation": "Olá"},
    "messageTimestamp": "1763647400",
    "status": "PENDING",
}


def adapter(stub: ProviderStub, http: aiohttp.ClientSession, timeout: float = 5) -> EvolutionProvider:
    return EvolutionProvider(base_url=stub.base_url, api_key=KEY, session=http, timeout=timeout)


def text(**overrides: str) -> SendTextRequest:
    return SendTextRequest(**{"instance_ref": "sales-01", "recipient": PHONE, "text": "Olá", **overrides})


async def test_send_text(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, SENT)
    sent = await adapter(stub, http).send_text(text())
    assert sent == SentMessage("BAE5F2A1C3D4E5F6")
    request = stub.last
    assert (request.method, request.path) == ("POST", "/message/sendText/sales-01")
    assert request.headers["apikey"] == KEY
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.json == {"number": PHONE, "text": "Olá"}


async def test_send_text_to_a_group_and_an_instance_name_needing_quoting(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(201, SENT)
    group = "120363025246125486@g.us"
    await adapter(stub, http).send_text(text(instance_ref="loja centro", recipient=group))
    assert stub.last.path == "/message/sendText/loja centro"
    assert stub.last.json == {"number": group, "text": "Olá"}


async def test_client_message_id_is_not_sent(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, SENT)
    await adapter(stub, http).send_text(text(client_message_id="3EB0AAAABBBBCCCCDDDD"))
    assert stub.last.json == {"number": PHONE, "text": "Olá"}


async def test_send_media_by_url(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, SENT)
    request = SendMediaRequest(
        instance_ref="sales-01",
        recipient=PHONE,
        kind=MediaKind.DOCUMENT,
        mimetype="application/pdf",
        url="https://cdn.example.com/catalogo.pdf",
        caption="Catálogo",
        filename="catalogo.pdf",
    )
    await adapter(stub, http).send_media(request)
    assert (stub.last.method, stub.last.path) == ("POST", "/message/sendMedia/sales-01")
    assert stub.last.json == {
        "number": PHONE,
        "mediatype": "document",
        "mimetype": "application/pdf",
        "media": "https://cdn.example.com/catalogo.pdf",
        "caption": "Catálogo",
        "fileName": "catalogo.pdf",
    }


async def test_send_image_inline(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, SENT)
    request = SendMediaRequest(
        instance_ref="sales-01",
        recipient=PHONE,
        kind=MediaKind.IMAGE,
        mimetype="image/jpeg",
        data_base64="/9j/4AA=",
    )
    await adapter(stub, http).send_media(request)
    assert stub.last.json == {
        "number": PHONE,
        "mediatype": "image",
        "mimetype": "image/jpeg",
        "media": "/9j/4AA=",
    }


async def test_send_audio(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, SENT)
    request = SendAudioRequest(instance_ref="sales-01", recipient=PHONE, url="https://cdn.example.com/oi.ogg")
    await adapter(stub, http).send_audio(request)
    assert (stub.last.method, stub.last.path) == ("POST", "/message/sendWhatsAppAudio/sales-01")
    assert stub.last.json == {"number": PHONE, "audio": "https://cdn.example.com/oi.ogg"}


async def test_send_reaction(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, SENT)
    request = SendReactionRequest(
        instance_ref="sales-01",
        recipient=PHONE,
        message_id="3A5F1C2D9E8B7A6F5E4D",
        emoji="👍",
        target_from_me=False,
    )
    await adapter(stub, http).send_reaction(request)
    assert (stub.last.method, stub.last.path) == ("POST", "/message/sendReaction/sales-01")
    assert stub.last.json == {
        "key": {"remoteJid": f"{PHONE}@s.whatsapp.net", "fromMe": False, "id": "3A5F1C2D9E8B7A6F5E4D"},
        "reaction": "👍",
    }


async def test_number_not_on_whatsapp_is_permanent(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(
        400,
        {
            "status": 400,
            "error": "Bad Request",
            "response": {"message": [{"jid": f"{PHONE}@s.whatsapp.net", "exists": False, "number": PHONE}]},
        },
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    error = caught.value
    assert (error.error_class, error.code, error.status) == (ErrorClass.PERMANENT, "not_on_whatsapp", 400)
    assert PHONE not in str(error)  # no personal data in what gets logged


async def test_validation_error_is_permanent(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    # abstract.router.ts `dataValidate` (2.3.6): the schema's messages, a list inside the list, before
    # anything is sent.
    stub.reply(
        400,
        {
            "status": 400,
            "error": "Bad Request",
            "response": {"message": [['instance requires property "text"']]},
        },
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.PERMANENT, "invalid_request")


async def test_wrong_apikey_restricts_the_instance(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(401, {"status": 401, "error": "Unauthorized", "response": {"message": "Unauthorized"}})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert caught.value.error_class is ErrorClass.RESTRICTED
    assert caught.value.restriction is Restriction.UNAUTHORIZED
    assert KEY not in str(caught.value)


async def test_unknown_instance(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(
        404,
        {
            "status": 404,
            "error": "Not Found",
            "response": {"message": ['The "sales-01" instance does not exist']},
        },
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert caught.value.restriction is Restriction.DISCONNECTED
    assert caught.value.code == "instance_not_found"


@pytest.mark.parametrize(
    "message",
    [
        "Error: Connection Closed",  # Baileys lost its socket, before or after the message left
        "Error: Timed Out",  # Baileys' query timeout
        "Error: rate-overlimit",
        "PrismaClientKnownRequestError: Unique constraint failed",  # saving after the send
    ],
)
async def test_a_400_from_inside_the_send_is_ambiguous(
    stub: ProviderStub, http: aiohttp.ClientSession, message: str
) -> None:
    # whatsapp.baileys.service.ts `sendMessageWithTyping` (2.3.6): `catch (error) { throw new
    # BadRequestException(error.toString()) }` around the send and everything after it.
    stub.reply(400, {"status": 400, "error": "Bad Request", "response": {"message": [message]}})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.AMBIGUOUS, "http_400")
    assert not caught.value.retryable


async def test_a_pre_send_refusal_is_permanent(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    # whatsapp.baileys.service.ts `textMessage` (2.3.6) refuses an empty text before sending.
    stub.reply(400, {"status": 400, "error": "Bad Request", "response": {"message": ["Text is required"]}})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.PERMANENT, "invalid_request")


async def test_a_500_on_a_send_is_ambiguous(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    # main.ts error handler: an unexpected exception is `{status: 500, error, response: {message}}`.
    stub.reply(
        500, {"status": 500, "error": "Internal Server Error", "response": {"message": "Connection Closed"}}
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.AMBIGUOUS, "http_500")


async def test_timelock_463_surfacing_through_evolution(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(
        400,
        {
            "status": 400,
            "error": "Bad Request",
            "response": {"message": ["Error: server returned error 463"]},
        },
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert caught.value.restriction is Restriction.REACHOUT_TIMELOCK


async def test_rate_limited_is_transient_with_retry_after(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(429, {"status": 429, "error": "Too Many Requests"}, headers={"Retry-After": "7"})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.retry_after) == (ErrorClass.TRANSIENT, 7.0)


async def test_slow_answer_is_ambiguous(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, SENT, delay=1.0)
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http, timeout=0.2).send_text(text())
    assert caught.value.error_class is ErrorClass.AMBIGUOUS
    assert len(stub.requests) == 1  # it did reach the provider


async def test_refused_connection_is_transient(closed_port_url: str, http: aiohttp.ClientSession) -> None:
    provider = EvolutionProvider(base_url=closed_port_url, api_key=KEY, session=http, timeout=2)
    with pytest.raises(ProviderError) as caught:
        await provider.send_text(text())
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.TRANSIENT, "connect_failed")


async def test_2xx_without_an_id_is_ambiguous(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, {"status": "PENDING"})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.AMBIGUOUS, "missing_message_id")
