"""Contract: WahaProvider sends what WAHA expects, reads every engine's answer, and looks messages up."""

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
    WahaProvider,
)
from tests.contract.providers.stub import ProviderStub

KEY = "waha-key-xyz"
PHONE = "5511987650000"
CHAT = f"{PHONE}@c.us"
MESSAGE_ID = f"true_{CHAT}_3EB0A1B2C3D4E5F60718"
WA_MESSAGE = {
    "id": MESSAGE_ID,
    "timestamp": 1763647391,
    "from": "5511912340000@c.us",
    "fromMe": True,
    "to": CHAT,
    "body": "Olá",
    "hasMedia": False,
    "ack": 1,
    "ackName": "SERVER",
}
TIMELOCK = {
    "statusCode": 500,
    "timestamp": "2026-02-10T23:38:04.173Z",
    "exception": {
        "message": "2 UNKNOWN: server returned error 463",
        "code": 2,
        "details": "server returned error 463",
        "metadata": {},
        "name": "Error",
    },
}


def adapter(stub: ProviderStub, http: aiohttp.ClientSession, timeout: float = 5) -> WahaProvider:
    return WahaProvider(base_url=stub.base_url, api_key=KEY, session=http, timeout=timeout)


def text(**overrides: str) -> SendTextRequest:
    return SendTextRequest(**{"instance_ref": "sales-03", "recipient": PHONE, "text": "Olá", **overrides})


async def test_send_text(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, WA_MESSAGE)
    assert await adapter(stub, http).send_text(text()) == SentMessage(MESSAGE_ID)
    assert (stub.last.method, stub.last.path) == ("POST", "/api/sendText")
    assert stub.last.headers["X-Api-Key"] == KEY
    assert stub.last.json == {"session": "sales-03", "chatId": CHAT, "text": "Olá"}


async def test_send_text_with_a_pre_generated_id(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, WA_MESSAGE)
    await adapter(stub, http).send_text(text(client_message_id="3EB0A1B2C3D4E5F60718"))
    assert stub.last.json == {
        "session": "sales-03",
        "chatId": CHAT,
        "text": "Olá",
        "id": "3EB0A1B2C3D4E5F60718",
    }


async def test_send_text_to_a_group(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    group = "120363025246125486@g.us"
    stub.reply(201, {**WA_MESSAGE, "id": f"true_{group}_3EB0FF"})
    sent = await adapter(stub, http).send_text(text(recipient=group))
    assert stub.last.json["chatId"] == group
    assert sent.provider_message_id == f"true_{group}_3EB0FF"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            {"id": {"fromMe": True, "remote": CHAT, "id": "3EB0AA", "_serialized": f"true_{CHAT}_3EB0AA"}},
            f"true_{CHAT}_3EB0AA",
        ),  # WEBJS
        (
            {"key": {"remoteJid": f"{PHONE}@s.whatsapp.net", "fromMe": True, "id": "3EB0BB"}, "message": {}},
            f"true_{CHAT}_3EB0BB",
        ),  # NOWEB
    ],
)
async def test_every_engine_answer_gives_the_serialized_id(
    stub: ProviderStub, http: aiohttp.ClientSession, answer: dict[str, object], expected: str
) -> None:
    stub.reply(201, answer)
    assert (await adapter(stub, http).send_text(text())).provider_message_id == expected


@pytest.mark.parametrize(
    ("kind", "endpoint"),
    [
        (MediaKind.IMAGE, "/api/sendImage"),
        (MediaKind.VIDEO, "/api/sendVideo"),
        (MediaKind.DOCUMENT, "/api/sendFile"),
    ],
)
async def test_send_media(
    stub: ProviderStub, http: aiohttp.ClientSession, kind: MediaKind, endpoint: str
) -> None:
    stub.reply(201, WA_MESSAGE)
    request = SendMediaRequest(
        instance_ref="sales-03",
        recipient=PHONE,
        kind=kind,
        mimetype="image/jpeg",
        url="https://cdn.example.com/a.jpg",
        caption="Veja",
        filename="a.jpg",
    )
    await adapter(stub, http).send_media(request)
    assert (stub.last.method, stub.last.path) == ("POST", endpoint)
    assert stub.last.json == {
        "session": "sales-03",
        "chatId": CHAT,
        "file": {"mimetype": "image/jpeg", "url": "https://cdn.example.com/a.jpg", "filename": "a.jpg"},
        "caption": "Veja",
    }


async def test_send_media_inline(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, WA_MESSAGE)
    request = SendMediaRequest(
        instance_ref="sales-03",
        recipient=PHONE,
        kind=MediaKind.IMAGE,
        mimetype="image/png",
        data_base64="iVBORw==",
    )
    await adapter(stub, http).send_media(request)
    assert stub.last.json == {
        "session": "sales-03",
        "chatId": CHAT,
        "file": {"mimetype": "image/png", "data": "iVBORw=="},
    }


async def test_send_voice(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, WA_MESSAGE)
    await adapter(stub, http).send_audio(
        SendAudioRequest(instance_ref="sales-03", recipient=PHONE, data_base64="T2dnUw==")
    )
    assert (stub.last.method, stub.last.path) == ("POST", "/api/sendVoice")
    assert stub.last.json == {
        "session": "sales-03",
        "chatId": CHAT,
        "file": {"mimetype": "audio/ogg; codecs=opus", "data": "T2dnUw=="},
    }


async def test_send_reaction(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, {})
    request = SendReactionRequest(
        instance_ref="sales-03",
        recipient=PHONE,
        message_id=f"false_{CHAT}_AAF1B2",
        emoji="❤️",
        target_from_me=False,
    )
    sent = await adapter(stub, http).send_reaction(request)
    assert (stub.last.method, stub.last.path) == ("PUT", "/api/reaction")
    assert stub.last.json == {"session": "sales-03", "messageId": f"false_{CHAT}_AAF1B2", "reaction": "❤️"}
    assert sent == SentMessage("")  # this engine answers a reaction without an id


async def test_error_463_is_a_reachout_timelock(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(500, TIMELOCK)
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    error = caught.value
    assert (error.error_class, error.restriction, error.status) == (
        ErrorClass.RESTRICTED,
        Restriction.REACHOUT_TIMELOCK,
        500,
    )
    assert not error.retryable


@pytest.mark.parametrize(
    ("status", "error_class", "restriction", "code"),
    [
        ("FAILED", ErrorClass.RESTRICTED, Restriction.DISCONNECTED, "session_failed"),
        ("STOPPED", ErrorClass.RESTRICTED, Restriction.DISCONNECTED, "session_stopped"),
        ("SCAN_QR_CODE", ErrorClass.RESTRICTED, Restriction.LOGGED_OUT, "session_needs_qr"),
        ("STARTING", ErrorClass.TRANSIENT, None, "session_starting"),
    ],
)
async def test_session_not_working(
    stub: ProviderStub,
    http: aiohttp.ClientSession,
    status: str,
    error_class: ErrorClass,
    restriction: Restriction | None,
    code: str,
) -> None:
    stub.reply(
        422,
        {
            "error": "Session status is not as expected. Try again later or restart the session",
            "session": "sales-03",
            "status": status,
            "expected": ["WORKING"],
        },
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.restriction, caught.value.code) == (
        error_class,
        restriction,
        code,
    )


async def test_other_engine_error_is_ambiguous(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    # GOWS answers WhatsApp's error after the message stanza went out: it may have been processed.
    stub.reply(500, {"statusCode": 500, "exception": {"message": "2 UNKNOWN: server returned error 400"}})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.AMBIGUOUS, "http_500")


@pytest.mark.parametrize(
    ("status", "error_class"), [(502, ErrorClass.AMBIGUOUS), (503, ErrorClass.TRANSIENT)]
)
async def test_a_proxy_error_on_a_send(
    stub: ProviderStub, http: aiohttp.ClientSession, status: int, error_class: ErrorClass
) -> None:
    stub.reply(status, text="<html>proxy</html>")
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.code) == (error_class, f"http_{status}")


async def test_rate_limit(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(
        429,
        {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"},
        headers={"Retry-After": "2"},
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.retry_after) == (ErrorClass.TRANSIENT, 2.0)


async def test_wrong_key(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(401, {"message": "Unauthorized", "statusCode": 401})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert caught.value.restriction is Restriction.UNAUTHORIZED


async def test_slow_send_is_ambiguous(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, WA_MESSAGE, delay=1.0)
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http, timeout=0.2).send_text(text())
    assert caught.value.error_class is ErrorClass.AMBIGUOUS


async def test_non_json_success_is_ambiguous(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, text="<html>proxy</html>")
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.AMBIGUOUS, "unparseable_response")


GATEWAY_URL = "https://gw.example.com/webhooks/waha/01JD4Q7W3X9K2M5N8P1R4T6V8Y"
WEBHOOK_KEY = "instance-webhook-secret-0123456789abcdef"
SESSION_INFO = {
    "name": "sales-03",
    "status": "WORKING",
    "config": {
        "metadata": {"tenant": "acme"},
        "proxy": {"server": "proxy.local:3128"},
        "webhooks": [{"url": "https://old.example.com/hook", "events": ["message"]}],
    },
    "me": {"id": "5511912340000@c.us", "pushName": "Loja Centro"},
}


async def test_set_session_webhook_keeps_the_rest_of_the_config(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(200, SESSION_INFO)
    stub.reply(200, SESSION_INFO)
    await adapter(stub, http).set_session_webhook("sales-03", url=GATEWAY_URL, hmac_key=WEBHOOK_KEY)
    read, write = stub.requests
    assert (read.method, read.path) == ("GET", "/api/sessions/sales-03")
    assert (write.method, write.path) == ("PUT", "/api/sessions/sales-03")
    assert write.headers["X-Api-Key"] == KEY
    assert write.json == {
        "config": {
            "metadata": {"tenant": "acme"},
            "proxy": {"server": "proxy.local:3128"},
            "webhooks": [
                {
                    "url": GATEWAY_URL,
                    "events": ["message", "message.ack", "message.ack.group", "session.status"],
                    "hmac": {"key": WEBHOOK_KEY},
                }
            ],
        }
    }


async def test_set_session_webhook_with_chosen_events(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(200, {"name": "sales-03", "status": "WORKING"})  # no config yet
    stub.reply(200, {"name": "sales-03", "status": "WORKING"})
    await adapter(stub, http).set_session_webhook(
        "sales-03", url=GATEWAY_URL, hmac_key=WEBHOOK_KEY, events=["message.ack"]
    )
    assert stub.last.json == {
        "config": {
            "webhooks": [{"url": GATEWAY_URL, "events": ["message.ack"], "hmac": {"key": WEBHOOK_KEY}}]
        }
    }


async def test_set_session_webhook_on_a_missing_session_is_an_error(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(404, {"statusCode": 404, "message": "Session not found", "error": "Not Found"})
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).set_session_webhook("sales-03", url=GATEWAY_URL, hmac_key=WEBHOOK_KEY)
    assert caught.value.code == "session_not_found"
    assert [r.method for r in stub.requests] == ["GET", "PUT"]  # WAHA's PUT answers 404 too


@pytest.mark.parametrize(("url", "key"), [("ftp://gw.example.com/hook", WEBHOOK_KEY), (GATEWAY_URL, "")])
async def test_set_session_webhook_refuses_a_bad_target_without_calling(
    stub: ProviderStub, http: aiohttp.ClientSession, url: str, key: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).set_session_webhook("sales-03", url=url, hmac_key=key)
    assert caught.value.error_class is ErrorClass.PERMANENT
    assert stub.requests == []
