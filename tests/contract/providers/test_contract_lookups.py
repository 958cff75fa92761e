"""Contract: looking a lost send up, per provider, engine and version. A lookup answers ABSENT only where
the capability table says a miss is proof and the search covered every chat; everything it cannot read
is INCONCLUSIVE; only a provider that could not be asked raises (TRANSIENT)."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import pytest

from libs.providers import (
    ErrorClass,
    EvolutionProvider,
    LookupRequest,
    LookupResult,
    LookupVerdict,
    ProviderError,
    ProviderProfile,
    SendTextRequest,
    SentMessage,
    TurboZapProvider,
    WahaProvider,
    WuzapiProvider,
)
from libs.providers.base import HttpProvider
from libs.seedwork.shared_kernel import MessageType, Provider, ProviderEngine
from tests.contract.providers.stub import ProviderStub

PHONE = "5511987650000"
CHAT = f"{PHONE}@c.us"
LID_CHAT = "190283746519283@lid"
CLIENT_ID = "3EB0A1B2C3D4E5F60718"
SENT_AFTER = datetime(2026, 11, 20, 14, 3, 11, tzinfo=UTC)

GOWS_NEW = ProviderProfile(Provider.WAHA, "2026.4.3", ProviderEngine.GOWS)
NOWEB_NEW = ProviderProfile(Provider.WAHA, "2026.8.1", ProviderEngine.NOWEB)
GOWS_OLD = ProviderProfile(Provider.WAHA, "2025.6.5", ProviderEngine.GOWS)
WEBJS = ProviderProfile(Provider.WAHA, "2025.6.5", ProviderEngine.WEBJS)
SIMULATOR = ProviderProfile(Provider.SIMULATOR)

# A WAHA message as the GOWS engine returns it (`id` serialized, `_data` whatsmeow's event), filed under
# the contact's @lid chat (devlikeapro/waha issue 1490 shows the GOWS shape; WAHA's docs, "Receive
# messages", describe @lid ids).
GOWS_MESSAGE = {
    "id": f"true_{LID_CHAT}_{CLIENT_ID}",
    "timestamp": 1763647391,
    "from": "5511912340000@c.us",
    "fromMe": True,
    "to": LID_CHAT,
    "body": "Olá",
    "hasMedia": False,
    "ack": 2,
    "ackName": "DEVICE",
    "_data": {"Info": {"Chat": LID_CHAT, "IsFromMe": True, "ID": CLIENT_ID}},
}
# NestJS NotFoundException / BadRequestException bodies as WAHA answers them.
MESSAGE_NOT_FOUND = {"statusCode": 404, "message": "Message not found", "error": "Not Found"}
SESSION_NOT_FOUND = {
    "statusCode": 404,
    "message": "We didn't find a session with name 'sales-03'",
    "error": "Not Found",
}
ROUTE_NOT_FOUND = {
    "statusCode": 404,
    "message": f"Cannot GET /api/sales-03/chats/all/messages/{CLIENT_ID}?downloadMedia=false",
    "error": "Not Found",
}
# devlikeapro/waha src/core/engines/noweb/store/NowebInMemoryStore.ts at 55fc6a42 (store disabled).
NOWEB_STORE_DISABLED = {
    "statusCode": 400,
    "message": 'Enable NOWEB store "config.noweb.store.enabled=True" and "config.noweb.store.full_sync=True" '
    "when starting a new session. Read more: https://waha.devlike.pro/docs/engines/noweb#store",
    "error": "Bad Request",
}


def lookup(
    profile: ProviderProfile,
    *,
    client_message_id: str | None = CLIENT_ID,
    message_type: MessageType = MessageType.TEXT,
    instance_ref: str = "sales-03",
) -> LookupRequest:
    return LookupRequest(
        profile=profile,
        instance_ref=instance_ref,
        recipient=PHONE,
        message_type=message_type,
        client_message_id=client_message_id,
        sent_after=SENT_AFTER,
    )


def waha(stub: ProviderStub, http: aiohttp.ClientSession, timeout: float = 5) -> WahaProvider:
    return WahaProvider(base_url=stub.base_url, api_key="waha-key", session=http, timeout=timeout)


# --- WAHA NOWEB/GOWS from 2026.4.3 (and the simulator): our id, searched in every chat ------------------


@pytest.mark.parametrize("profile", [GOWS_NEW, NOWEB_NEW, SIMULATOR])
async def test_found_across_every_chat_even_under_an_lid(
    stub: ProviderStub, http: aiohttp.ClientSession, profile: ProviderProfile
) -> None:
    stub.reply(200, GOWS_MESSAGE)
    result = await waha(stub, http).find_sent_message(lookup(profile))
    assert result == LookupResult.found(f"true_{LID_CHAT}_{CLIENT_ID}")
    assert (stub.last.method, stub.last.path) == ("GET", f"/api/sales-03/chats/all/messages/{CLIENT_ID}")
    assert stub.last.query == {"downloadMedia": "false"}
    assert stub.last.headers["X-Api-Key"] == "waha-key"


@pytest.mark.parametrize("profile", [GOWS_NEW, NOWEB_NEW, SIMULATOR])
async def test_a_miss_where_our_id_is_kept_proves_absence(
    stub: ProviderStub, http: aiohttp.ClientSession, profile: ProviderProfile
) -> None:
    stub.reply(404, MESSAGE_NOT_FOUND)
    assert await waha(stub, http).find_sent_message(lookup(profile)) == LookupResult.absent()


async def test_a_null_answer_is_a_miss(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, text="null", headers={"Content-Type": "application/json"})
    assert await waha(stub, http).find_sent_message(lookup(GOWS_NEW)) == LookupResult.absent()


async def test_a_type_whose_id_is_not_kept_proves_nothing(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    # WAHA documents the pre-generated id on sendText only: a media send may carry an id of WAHA's own.
    stub.reply(404, MESSAGE_NOT_FOUND)
    result = await waha(stub, http).find_sent_message(lookup(GOWS_NEW, message_type=MessageType.MEDIA))
    assert result == LookupResult.inconclusive("not_found")


async def test_noweb_without_its_store_is_inconclusive(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(400, NOWEB_STORE_DISABLED)
    result = await waha(stub, http).find_sent_message(lookup(NOWEB_NEW))
    assert result == LookupResult.inconclusive("store_disabled")


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (404, SESSION_NOT_FOUND, "session_not_found"),
        (404, ROUTE_NOT_FOUND, "lookup_unsupported"),  # a release older than the registry says
        (
            422,
            {
                "error": "Session status is not as expected. Try again later or restart the session",
                "session": "sales-03",
                "status": "STARTING",
                "expected": ["WORKING"],
            },
            "http_422",
        ),
        (400, {"statusCode": 400, "message": "Invalid message id", "error": "Bad Request"}, "http_400"),
        (401, {"statusCode": 401, "message": "Unauthorized"}, "http_401"),
    ],
)
async def test_an_answer_about_something_else_is_not_a_miss(
    stub: ProviderStub, http: aiohttp.ClientSession, status: int, body: object, reason: str
) -> None:
    stub.reply(status, body)
    assert await waha(stub, http).find_sent_message(lookup(GOWS_NEW)) == LookupResult.inconclusive(reason)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"text": ""}, "empty_body"),  # WEBJS 2025.6.5 answered with empty bodies
        ({"text": "<html>ok</html>"}, "unparseable_body"),
        ({"json": {"status": "ok"}}, "unknown_shape"),
        ({"json": {**GOWS_MESSAGE, "id": f"true_{CHAT}_3EB0FFFFFFFFFFFFFFFF"}}, "other_message"),
    ],
)
async def test_a_2xx_that_cannot_be_read_is_inconclusive(
    stub: ProviderStub, http: aiohttp.ClientSession, answer: dict[str, object], reason: str
) -> None:
    if "text" in answer:
        stub.reply(200, text=str(answer["text"]))
    else:
        stub.reply(200, answer["json"])
    assert await waha(stub, http).find_sent_message(lookup(GOWS_NEW)) == LookupResult.inconclusive(reason)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_5xx_on_a_lookup_is_transient(
    stub: ProviderStub, http: aiohttp.ClientSession, status: int
) -> None:
    stub.reply(status, {"statusCode": status, "message": "Internal server error"})
    with pytest.raises(ProviderError) as caught:
        await waha(stub, http).find_sent_message(lookup(GOWS_NEW))
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.TRANSIENT, f"http_{status}")


async def test_a_slow_lookup_is_transient(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, GOWS_MESSAGE, delay=1.0)
    with pytest.raises(ProviderError) as caught:
        await waha(stub, http, timeout=0.2).find_sent_message(lookup(GOWS_NEW))
    assert caught.value.error_class is ErrorClass.TRANSIENT


async def test_an_unreachable_provider_is_transient(
    closed_port_url: str, http: aiohttp.ClientSession
) -> None:
    provider = WahaProvider(base_url=closed_port_url, api_key="k", session=http, timeout=2)
    with pytest.raises(ProviderError) as caught:
        await provider.find_sent_message(lookup(GOWS_NEW))
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.TRANSIENT, "connect_failed")


# --- older WAHA and WEBJS: our id ignored, chats filed under @lid --------------------------------------


async def test_old_waha_404_for_a_message_it_sent_proves_nothing(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    # The message left, filed under the contact's @lid chat (or under WAHA's own id): the @c.us chat
    # answers 404 all the same.
    stub.reply(404, MESSAGE_NOT_FOUND)
    result = await waha(stub, http).find_sent_message(lookup(GOWS_OLD))
    assert result.verdict is LookupVerdict.INCONCLUSIVE and result.reason == "not_found"
    serialized = f"true_{CHAT}_{CLIENT_ID}"
    assert stub.last.path == f"/api/sales-03/chats/{CHAT}/messages/{serialized}"


async def test_old_waha_that_kept_the_id_after_all_is_found(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(200, {**GOWS_MESSAGE, "id": f"true_{CHAT}_{CLIENT_ID}"})
    assert await waha(stub, http).find_sent_message(lookup(GOWS_OLD)) == LookupResult.found(
        f"true_{CHAT}_{CLIENT_ID}"
    )


async def test_a_send_without_our_id_cannot_be_looked_up(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    result = await waha(stub, http).find_sent_message(lookup(WEBJS, client_message_id=None))
    assert result == LookupResult.inconclusive("no_client_id")
    assert stub.requests == []


async def test_webjs_empty_send_answer_is_ambiguous(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    # WAHA WEBJS 2025.6.5 answered sendText 201 with an empty body: the message may well have left.
    stub.reply(201, text="")
    with pytest.raises(ProviderError) as caught:
        await waha(stub, http).send_text(
            SendTextRequest(instance_ref="sales-03", recipient=PHONE, text="Olá")
        )
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.AMBIGUOUS, "missing_message_id")


async def test_gows_send_answer_is_read(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    # GOWS answers sendText with `{id, _data: {Info, Message}}` (devlikeapro/waha issue 1490).
    stub.reply(201, {"id": f"true_{CHAT}_{CLIENT_ID}", "_data": {"Info": {"Chat": CHAT, "IsFromMe": True}}})
    request = SendTextRequest(
        instance_ref="sales-03", recipient=PHONE, text="Olá", client_message_id=CLIENT_ID
    )
    assert await waha(stub, http).send_text(request) == SentMessage(f"true_{CHAT}_{CLIENT_ID}")


# --- Evolution 2.3.6: findMessages by chat + fromMe + time ---------------------------------------------

EVOLUTION = ProviderProfile(Provider.EVOLUTION, "2.3.6")
EVO_JID = f"{PHONE}@s.whatsapp.net"


def evolution_record(
    message_id: str, timestamp: int, message_type: str = "conversation"
) -> dict[str, object]:
    # whatsapp.baileys.service.ts `fetchMessages` (2.3.6): the `select` of each record.
    return {
        "id": f"cmh{message_id.lower()}",
        "key": {"id": message_id, "fromMe": True, "remoteJid": EVO_JID},
        "pushName": "Você",
        "messageType": message_type,
        "message": {"conversation": "Olá"} if message_type == "conversation" else {"reactionMessage": {}},
        "messageTimestamp": timestamp,
        "instanceId": "8c5e1f2a-1111-2222-3333-444455556666",
        "source": "web",
        "contextInfo": None,
        "MessageUpdate": [{"status": "SERVER_ACK"}],
    }


def evolution_page(*records: dict[str, object]) -> dict[str, object]:
    return {"messages": {"total": len(records), "pages": 1, "currentPage": 1, "records": list(records)}}


def evolution(stub: ProviderStub, http: aiohttp.ClientSession) -> EvolutionProvider:
    return EvolutionProvider(base_url=stub.base_url, api_key="evo-key", session=http, timeout=5)


async def test_evolution_finds_our_message_to_the_chat_since_the_attempt(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    since = int(SENT_AFTER.timestamp())
    stub.reply(
        200,
        evolution_page(evolution_record("BAE5LATER", since + 9), evolution_record("BAE5FIRST", since + 2)),
    )
    result = await evolution(stub, http).find_sent_message(lookup(EVOLUTION, client_message_id=None))
    assert result == LookupResult.found("BAE5FIRST")
    request = stub.last
    assert (request.method, request.path) == ("POST", "/chat/findMessages/sales-03")
    assert request.headers["apikey"] == "evo-key"
    where = request.json["where"]
    assert where["key"] == {"remoteJid": EVO_JID, "fromMe": True}
    gte = datetime.fromisoformat(where["messageTimestamp"]["gte"])
    lte = datetime.fromisoformat(where["messageTimestamp"]["lte"])
    assert gte <= SENT_AFTER < lte  # both ends: Evolution ignores a half-open range


async def test_evolution_miss_proves_nothing(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    # Evolution saves messages only with DATABASE_SAVE_DATA_NEW_MESSAGE, and may file the chat under @lid.
    stub.reply(200, evolution_page())
    result = await evolution(stub, http).find_sent_message(lookup(EVOLUTION))
    assert result == LookupResult.inconclusive("not_found")


async def test_evolution_does_not_take_a_reaction_for_the_text(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    since = int(SENT_AFTER.timestamp())
    stub.reply(200, evolution_page(evolution_record("BAE5REACT", since + 1, "reactionMessage")))
    assert await evolution(stub, http).find_sent_message(lookup(EVOLUTION)) == LookupResult.inconclusive(
        "not_found"
    )
    stub.reply(200, evolution_page(evolution_record("BAE5REACT", since + 1, "reactionMessage")))
    reaction = lookup(EVOLUTION, message_type=MessageType.REACTION)
    assert await evolution(stub, http).find_sent_message(reaction) == LookupResult.found("BAE5REACT")


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (
            404,
            {
                "status": 404,
                "error": "Not Found",
                "response": {"message": ['The "sales-03" instance does not exist']},
            },
            "http_404",
        ),
        (
            400,
            {
                "status": 400,
                "error": "Bad Request",
                "response": {"message": [["where is not of a type(s) object"]]},
            },
            "http_400",
        ),
        (200, {"messages": []}, "unknown_shape"),
    ],
)
async def test_evolution_unreadable_answers_are_inconclusive(
    stub: ProviderStub, http: aiohttp.ClientSession, status: int, body: object, reason: str
) -> None:
    stub.reply(status, body)
    assert await evolution(stub, http).find_sent_message(lookup(EVOLUTION)) == LookupResult.inconclusive(
        reason
    )


async def test_evolution_5xx_on_a_lookup_is_transient(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(500, {"status": 500, "error": "Internal Server Error", "response": {"message": "db down"}})
    with pytest.raises(ProviderError) as caught:
        await evolution(stub, http).find_sent_message(lookup(EVOLUTION))
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.TRANSIENT, "http_500")


# --- wuzapi and TurboZap: nothing to ask ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("adapter", "provider"), [(WuzapiProvider, Provider.WUZAPI), (TurboZapProvider, Provider.TURBOZAP)]
)
async def test_providers_without_a_lookup_are_never_asked(
    stub: ProviderStub, http: aiohttp.ClientSession, adapter: type[HttpProvider], provider: Provider
) -> None:
    instance = adapter(base_url=stub.base_url, api_key="k", session=http)
    result = await instance.find_sent_message(lookup(ProviderProfile(provider)))
    assert result == LookupResult.inconclusive("lookup_unsupported")
    assert stub.requests == []
