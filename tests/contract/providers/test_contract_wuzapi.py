"""Contract: WuzapiProvider sends exactly what wuzapi expects (token header, Phone/Body/Id, data URLs).

Request shapes from asternic/wuzapi `handlers.go` at 79ee4cd87a867f3c905574e7a9057b4cb7dbb16c (each test
names the handler). Media given by URL are served by a local media server, so the download really happens.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

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
from tests.contract.providers.stub import LocalHttpServer, ProviderStub

TOKEN = "user-token-1234ABCD"
PHONE = "5521998887777"
MESSAGE_ID = "90B2F8B13FAC8A9CF6B06E99C7834DC5"
SENT = {
    "code": 200,
    "data": {"Details": "Sent", "Id": MESSAGE_ID, "Timestamp": "2026-11-20T14:05:01-03:00"},
    "success": True,
}


JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
PDF = b"%PDF-1.7\n" + b"tabela de precos\n" * 50
OGG = b"OggS\x00\x02" + bytes(200)
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(300)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def adapter(
    stub: ProviderStub,
    http: aiohttp.ClientSession,
    timeout: float = 5,
    *,
    max_media_bytes: int = 1024 * 1024,
    media_timeout: float = 5,
) -> WuzapiProvider:
    return WuzapiProvider(
        base_url=stub.base_url,
        api_key=TOKEN,
        session=http,
        timeout=timeout,
        max_media_bytes=max_media_bytes,
        media_timeout=media_timeout,
    )


@dataclass
class Served:
    body: bytes
    content_type: str | None
    status: int = 200
    delay: float = 0.0
    chunked: bool = False  # no Content-Length: the size is only known while streaming


class MediaServer(LocalHttpServer):
    """A CDN standing in for where the Executor's media URLs point; counts what it managed to send."""

    method = "GET"

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, Served] = {}
        self.sent_bytes: dict[str, int] = {}

    def serve(self, path: str, served: Served) -> str:
        self.files[path] = served
        return f"{self.base_url}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        served = self.files.get(request.path)
        if served is None:
            return web.Response(status=404)
        if served.delay:
            await asyncio.sleep(served.delay)
        headers = {"Content-Type": served.content_type} if served.content_type else {}
        if not served.chunked:
            return web.Response(status=served.status, body=served.body, headers=headers)
        response = web.StreamResponse(status=served.status, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        self.sent_bytes[request.path] = 0
        try:
            for start in range(0, len(served.body), 64 * 1024):
                chunk = served.body[start : start + 64 * 1024]
                await response.write(chunk)
                self.sent_bytes[request.path] += len(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # the client hung up: what the limit test wants
        return response


@pytest.fixture
async def media() -> AsyncIterator[MediaServer]:
    server = MediaServer()
    await server.start()
    yield server
    await server.stop()


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
    # handlers.go SendDocument: only "data:application/octet-stream" passes; FileName is required.
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
        "Document": "data:application/octet-stream;base64,JVBERi0=",
        "MimeType": "application/pdf",
        "FileName": "tabela.pdf",
    }


async def test_image_from_a_url_is_downloaded_and_sent_inline(
    stub: ProviderStub, http: aiohttp.ClientSession, media: MediaServer
) -> None:
    # handlers.go SendImage: `Image` must start with "data:image"; wuzapi never fetches a URL itself.
    stub.reply(200, SENT)
    url = media.serve("/m/foto.jpg", Served(JPEG, "image/jpeg"))
    request = SendMediaRequest(
        instance_ref="sales-04",
        recipient=PHONE,
        kind=MediaKind.IMAGE,
        mimetype="image/png",
        url=url,
        caption="Olha",
        client_message_id=MESSAGE_ID,
    )
    sent = await adapter(stub, http).send_media(request)
    assert sent == SentMessage(MESSAGE_ID)
    assert (stub.last.method, stub.last.path) == ("POST", "/chat/send/image")
    assert stub.last.json == {
        "Phone": PHONE,
        "Image": f"data:image/jpeg;base64,{b64(JPEG)}",  # the type the file was served as
        "Caption": "Olha",
        "Id": MESSAGE_ID,
    }


async def test_document_from_a_url_keeps_its_type_apart(
    stub: ProviderStub, http: aiohttp.ClientSession, media: MediaServer
) -> None:
    # handlers.go SendDocument: octet-stream data URL, the real type in MimeType, FileName required.
    stub.reply(200, SENT)
    url = media.serve("/files/tabela-2026.pdf", Served(PDF, "application/octet-stream"))
    request = SendMediaRequest(
        instance_ref="sales-04",
        recipient=PHONE,
        kind=MediaKind.DOCUMENT,
        mimetype="application/pdf",
        url=url,
        client_message_id=MESSAGE_ID,
    )
    await adapter(stub, http).send_media(request)
    assert stub.last.path == "/chat/send/document"
    assert stub.last.json == {
        "Phone": PHONE,
        "Document": f"data:application/octet-stream;base64,{b64(PDF)}",
        "MimeType": "application/pdf",  # the CDN said octet-stream: the request's type is the specific one
        "FileName": "tabela-2026.pdf",
        "Id": MESSAGE_ID,
    }


async def test_voice_note_from_a_url(
    stub: ProviderStub, http: aiohttp.ClientSession, media: MediaServer
) -> None:
    # handlers.go SendAudio: `Audio` must start with "data:audio/ogg"; it is sent as PTT, ogg/opus.
    stub.reply(200, SENT)
    url = media.serve("/v/voz.ogg", Served(OGG, "audio/ogg; codecs=opus"))
    await adapter(stub, http).send_audio(
        SendAudioRequest(instance_ref="sales-04", recipient=PHONE, url=url, client_message_id=MESSAGE_ID)
    )
    assert stub.last.path == "/chat/send/audio"
    assert stub.last.json == {"Phone": PHONE, "Audio": f"data:audio/ogg;base64,{b64(OGG)}", "Id": MESSAGE_ID}


async def test_video_from_a_url(stub: ProviderStub, http: aiohttp.ClientSession, media: MediaServer) -> None:
    # handlers.go SendVideo: any "data…" URL in `Video`, optional Caption.
    stub.reply(200, SENT)
    url = media.serve("/v/demo.mp4", Served(MP4, "video/mp4"))
    request = SendMediaRequest(
        instance_ref="sales-04",
        recipient=PHONE,
        kind=MediaKind.VIDEO,
        mimetype="video/mp4",
        url=url,
        client_message_id=MESSAGE_ID,
    )
    await adapter(stub, http).send_media(request)
    assert stub.last.path == "/chat/send/video"
    assert stub.last.json == {"Phone": PHONE, "Video": f"data:video/mp4;base64,{b64(MP4)}", "Id": MESSAGE_ID}


async def test_oversized_media_is_refused_while_streaming(
    stub: ProviderStub, http: aiohttp.ClientSession, media: MediaServer
) -> None:
    # No Content-Length: only counting while reading can stop it.
    endless = bytes(32 * 1024 * 1024)
    url = media.serve("/big.jpg", Served(endless, "image/jpeg", chunked=True))
    request = SendMediaRequest(
        instance_ref="sales-04", recipient=PHONE, kind=MediaKind.IMAGE, mimetype="image/jpeg", url=url
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http, max_media_bytes=256 * 1024).send_media(request)
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.PERMANENT, "media_too_large")
    assert not caught.value.retryable
    assert stub.requests == []  # nothing reached wuzapi
    for _ in range(100):  # let the server notice the hang-up
        if media.sent_bytes.get("/big.jpg", 0) < len(endless):
            break
        await asyncio.sleep(0.01)
    assert media.sent_bytes["/big.jpg"] < len(endless)  # the download was cut, not read to the end


async def test_declared_oversize_is_refused_before_reading(
    stub: ProviderStub, http: aiohttp.ClientSession, media: MediaServer
) -> None:
    url = media.serve("/big.pdf", Served(PDF, "application/pdf"))
    request = SendMediaRequest(
        instance_ref="sales-04", recipient=PHONE, kind=MediaKind.DOCUMENT, mimetype="application/pdf", url=url
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http, max_media_bytes=len(PDF) - 1).send_media(request)
    assert caught.value.code == "media_too_large"
    assert stub.requests == []


@pytest.mark.parametrize("status", [500, 503])
async def test_media_server_failure_is_transient(
    stub: ProviderStub, http: aiohttp.ClientSession, media: MediaServer, status: int
) -> None:
    url = media.serve("/flaky.jpg", Served(b"oops", "text/plain", status=status))
    request = SendMediaRequest(
        instance_ref="sales-04", recipient=PHONE, kind=MediaKind.IMAGE, mimetype="image/jpeg", url=url
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_media(request)
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.TRANSIENT, "media_download_failed")
    assert stub.requests == []  # nothing was sent to WhatsApp, so the retry is safe


async def test_slow_media_server_is_transient(
    stub: ProviderStub, http: aiohttp.ClientSession, media: MediaServer
) -> None:
    url = media.serve("/slow.ogg", Served(OGG, "audio/ogg", delay=2.0))
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http, media_timeout=0.2).send_audio(
            SendAudioRequest(instance_ref="sales-04", recipient=PHONE, url=url)
        )
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.TRANSIENT, "media_download_timeout")
    assert stub.requests == []


async def test_unreachable_media_server_is_transient(
    stub: ProviderStub, http: aiohttp.ClientSession, closed_port_url: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_audio(
            SendAudioRequest(instance_ref="sales-04", recipient=PHONE, url=f"{closed_port_url}/a.ogg")
        )
    assert caught.value.error_class is ErrorClass.TRANSIENT
    assert stub.requests == []


async def test_missing_media_is_permanent(
    stub: ProviderStub, http: aiohttp.ClientSession, media: MediaServer
) -> None:
    request = SendMediaRequest(
        instance_ref="sales-04",
        recipient=PHONE,
        kind=MediaKind.IMAGE,
        mimetype="image/jpeg",
        url=f"{media.base_url}/gone.jpg",
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_media(request)
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.PERMANENT, "media_unavailable")
    assert stub.requests == []


async def test_wrong_kind_of_media_is_permanent(
    stub: ProviderStub, http: aiohttp.ClientSession, media: MediaServer
) -> None:
    # A "voice note" that is an MP3, an "image" that is an HTML page: wuzapi would refuse or mislabel them.
    mp3 = media.serve("/a.mp3", Served(b"ID3\x04" + bytes(100), "audio/mpeg"))
    html = media.serve("/login", Served(b"<html></html>", "text/html"))
    provider = adapter(stub, http)
    with pytest.raises(ProviderError) as audio:
        await provider.send_audio(SendAudioRequest(instance_ref="sales-04", recipient=PHONE, url=mp3))
    with pytest.raises(ProviderError) as image:
        await provider.send_media(
            SendMediaRequest(
                instance_ref="sales-04", recipient=PHONE, kind=MediaKind.IMAGE, mimetype="text/html", url=html
            )
        )
    for caught in (audio, image):
        assert (caught.value.error_class, caught.value.code) == (
            ErrorClass.PERMANENT,
            "unsupported_media_type",
        )
    assert stub.requests == []


async def test_inline_media_is_still_sent_as_given(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    # Inline media skip the download and its checks: whatever was accepted before still goes out.
    stub.reply(200, SENT)
    provider = adapter(stub, http, max_media_bytes=1)
    await provider.send_media(
        SendMediaRequest(
            instance_ref="sales-04",
            recipient=PHONE,
            kind=MediaKind.VIDEO,
            mimetype="video/mp4",
            data_base64="AAAA",
        )
    )
    await provider.send_audio(SendAudioRequest(instance_ref="sales-04", recipient=PHONE, data_base64="SUQz"))
    assert [r.json for r in stub.requests] == [
        {"Phone": PHONE, "Video": "data:video/mp4;base64,AAAA"},
        {"Phone": PHONE, "Audio": "data:audio/ogg;base64,SUQz"},
    ]


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
    # handlers.go React: {Phone, Body, Id}; "me:" marks a message this instance sent.
    stub.reply(200, SENT)
    request = SendReactionRequest(
        instance_ref="sales-04",
        recipient=PHONE,
        message_id="069EDE53E81CB5A4",
        emoji="❤️",
        target_from_me=True,
    )
    sent = await adapter(stub, http).send_reaction(request)
    assert (stub.last.method, stub.last.path) == ("POST", "/chat/react")
    assert stub.last.json == {"Phone": PHONE, "Body": "❤️", "Id": "me:069EDE53E81CB5A4"}
    # wuzapi answers with the target's id (the reaction goes out under it): not a message of ours.
    assert sent == SentMessage("")


async def test_remove_a_reaction(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    # handlers.go React: an empty Body is "Missing Body in Payload"; "remove" sends the empty reaction.
    target = "069EDE53E81CB5A4"
    stub.reply(200, {"code": 200, "data": {"Details": "Sent", "Id": target}, "success": True})
    request = SendReactionRequest(
        instance_ref="sales-04", recipient=PHONE, message_id=target, emoji="", target_from_me=False
    )
    sent = await adapter(stub, http).send_reaction(request)
    assert stub.last.json == {"Phone": PHONE, "Body": "remove", "Id": target}
    assert sent.provider_message_id != target


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


async def test_other_send_failure_is_ambiguous(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    # handlers.go SendMessage (79ee4cd): `Error sending message: %v` wraps whatsmeow's error, which may
    # come after the message left (a timeout waiting for the server's answer).
    stub.reply(
        500, {"code": 500, "error": "Error sending message: context deadline exceeded", "success": False}
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_text(text())
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.AMBIGUOUS, "http_500")


async def test_a_failed_upload_is_transient(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    # handlers.go SendImage (79ee4cd): the upload fails before the message is built.
    stub.reply(500, {"code": 500, "error": "Failed to upload file: unexpected EOF", "success": False})
    request = SendMediaRequest(
        instance_ref="wuz-01",
        recipient=PHONE,
        kind=MediaKind.IMAGE,
        mimetype="image/png",
        data_base64="iVBORw0KGgo=",
    )
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http).send_media(request)
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.TRANSIENT, "pre_send_failure")


async def test_slow_send_is_ambiguous(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, SENT, delay=1.0)
    with pytest.raises(ProviderError) as caught:
        await adapter(stub, http, timeout=0.2).send_text(text(client_message_id=MESSAGE_ID))
    assert caught.value.error_class is ErrorClass.AMBIGUOUS
