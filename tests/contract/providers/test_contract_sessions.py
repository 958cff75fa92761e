"""Contract: every adapter's session calls (start, webhook, QR, pairing code, status, logout, delete) send
what its provider expects and read its real answers, errors included.

Shapes, with their sources (docs/providers.md, "Sessions"):
- WAHA 2024.10.8 (devlikeapro/waha 55fc6a42): `src/api/sessions.controller.ts`, `src/api/auth.controller.ts`,
  `src/nestjs/pipes/SessionPipe.ts` + `src/core/abc/manager.abc.ts` `waitUntilStatus` (422 guard),
  `src/core/manager.core.ts` `getSession` (404), `src/nestjs/BufferResponseInterceptor.ts` (the QR image
  as `{mimetype, data}` for `Accept: application/json`), `src/structures/auth.dto.ts`.
- Evolution API 2.3.6 (3454bec7): `instance.router.ts`, `instance.controller.ts`, `guards/instance.guard.ts`,
  `integrations/event/webhook/`, `exceptions/*.exception.ts` (`{status, error, response: {message}}`).
- wuzapi (asternic/wuzapi 79ee4cd8): `handlers.go` Connect, GetQR, PairPhone, Logout, Disconnect,
  SetWebhook, `Respond` (`{code, data, success}` / `{code, error, success: false}`).
- TurboZap (jonadableite/TurboZap-api 7c79ca25): `router.go`, `handler/instance_handler.go`,
  `handler/webhook_handler.go`, `dto/instance_dto.go`, `interface/response/response.go`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from libs.providers import (
    SESSION_NOT_FOUND,
    ErrorClass,
    EvolutionProvider,
    PairingCode,
    ProviderError,
    ProviderSessions,
    QrCode,
    Restriction,
    SessionStatus,
    SessionWebhook,
    TurboZapProvider,
    WahaProvider,
    WuzapiProvider,
    build_sessions,
)
from libs.providers.base import HttpProvider
from libs.seedwork.shared_kernel import ConnectionState
from libs.webhooks import STATIC_SECRET_HEADER
from tests.contract.providers.stub import ProviderStub

KEY = "session-key-4b1e7d"
SESSION = "sales-03"
PHONE = "5511987650000"
SECRET = "per-instance-webhook-secret-of-32-chars"
HOOK_URL = "https://gateway.example.com/webhooks/waha/inst-1"
WEBHOOK = SessionWebhook(url=HOOK_URL, secret=SECRET)
# A 1x1 PNG, as the providers' QR libraries would answer it (only the bytes matter here).
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PNG = base64.b64decode(PNG_B64)
DATA_URL = f"data:image/png;base64,{PNG_B64}"
QR_TEXT = "2@y8Zc1Vq3XkT2pQ,Jq4nq0X1bE0+8s7Qm2v2b3k=,0l4Q0o8m0JcQ1Yk0aN2sWm7pQ=,Zm9vYmFyYmF6cXV4"


def adapter(kind: Callable[..., HttpProvider], stub: ProviderStub, http: aiohttp.ClientSession) -> Any:
    return kind(base_url=stub.base_url, api_key=KEY, session=http, timeout=5)


def calls(stub: ProviderStub) -> list[tuple[str, str]]:
    return [(request.method, request.path) for request in stub.requests]


async def fails(call: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call
    for secret in (KEY, SECRET, QR_TEXT, PHONE):
        assert secret not in str(caught.value)  # nothing secret in what gets logged
    return caught.value


# --- the port itself ------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["WAHA", "SIMULATOR", "EVOLUTION", "WUZAPI", "TURBOZAP"])
def test_every_adapter_offers_the_session_port(provider: str, http: aiohttp.ClientSession) -> None:
    sessions = build_sessions(provider, "http://127.0.0.1:1", KEY, session=http)
    assert isinstance(sessions, ProviderSessions)
    assert sessions.offers_pairing_code is (provider != "TURBOZAP")


def test_a_webhook_needs_an_http_url_and_a_secret_and_never_shows_it() -> None:
    for url, secret in (("ftp://gateway/x", SECRET), (HOOK_URL, "")):
        with pytest.raises(ProviderError) as caught:
            SessionWebhook(url=url, secret=secret)
        assert caught.value.error_class is ErrorClass.PERMANENT
    assert SECRET not in repr(WEBHOOK)


def test_a_qr_code_never_shows_its_text() -> None:
    qr = QrCode(raw=QR_TEXT, png=PNG)
    assert QR_TEXT not in repr(qr) and QR_TEXT not in str(qr)
    with pytest.raises(ValueError):
        QrCode(raw="", png=b"")


# --- WAHA ----------------------------------------------------------------------------------------------


def waha_info(status: str, **extra: Any) -> dict[str, Any]:
    """`SessionInfo` as `POST /api/sessions`, `/start`, `/restart`, `/logout` and `GET` answer it."""
    return {
        "name": SESSION,
        "status": status,
        "config": {},
        "me": None,
        "engine": {"engine": "NOWEB"},
        **extra,
    }


WAHA_EXISTS = {
    "statusCode": 422,
    "message": f"Session '{SESSION}' already exists. Use PUT to update it.",
    "error": "Unprocessable Entity",
}
WAHA_NOT_FOUND = {"statusCode": 404, "message": "Session not found", "error": "Not Found"}


def waha_guard(status: str, expected: str = "SCAN_QR_CODE") -> dict[str, Any]:
    """The 422 of `waitUntilStatus` (the QR and every route that needs a status): NestJS answers the
    object given to `UnprocessableEntityException` as the body."""
    return {
        "error": "Session status is not as expected. Try again later or restart the session",
        "session": SESSION,
        "status": status,
        "expected": [expected],
    }


async def test_waha_start_creates_and_starts_a_new_session(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(201, waha_info("STARTING"))
    status = await adapter(WahaProvider, stub, http).start_session(SESSION)
    assert status == SessionStatus(ConnectionState.CONNECTING, "STARTING")
    assert calls(stub) == [("POST", "/api/sessions")]
    assert stub.last.json == {"name": SESSION, "start": True}
    assert stub.last.headers["X-Api-Key"] == KEY


async def test_waha_start_starts_an_existing_session(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(422, WAHA_EXISTS)
    stub.reply(201, waha_info("SCAN_QR_CODE"))
    status = await adapter(WahaProvider, stub, http).start_session(SESSION)
    assert status.state is ConnectionState.QR_REQUIRED
    assert calls(stub) == [("POST", "/api/sessions"), ("POST", f"/api/sessions/{SESSION}/start")]


async def test_waha_start_restarts_a_failed_session(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(422, WAHA_EXISTS)
    stub.reply(201, waha_info("FAILED"))
    stub.reply(201, waha_info("STARTING"))
    status = await adapter(WahaProvider, stub, http).start_session(SESSION)
    assert status.state is ConnectionState.CONNECTING
    assert calls(stub)[-1] == ("POST", f"/api/sessions/{SESSION}/restart")


async def test_waha_start_failing_is_transient_never_ambiguous(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(500, {"statusCode": 500, "exception": {"message": "engine crashed"}})
    error = await fails(adapter(WahaProvider, stub, http).start_session(SESSION))
    assert error.error_class is ErrorClass.TRANSIENT


async def test_waha_webhook_replaces_the_session_webhooks_and_keeps_the_rest(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    old = {"url": "https://old.example.com/hook", "events": ["message"]}
    stub.reply(200, waha_info("WORKING", config={"metadata": {"tenant": "acme"}, "webhooks": [old]}))
    stub.reply(200, waha_info("WORKING"))
    webhook = SessionWebhook(url=HOOK_URL, secret=SECRET, headers={"X-Tenant": "acme"})
    await adapter(WahaProvider, stub, http).set_webhook(SESSION, webhook)
    assert calls(stub) == [("GET", f"/api/sessions/{SESSION}"), ("PUT", f"/api/sessions/{SESSION}")]
    assert stub.last.json == {
        "config": {
            "metadata": {"tenant": "acme"},
            "webhooks": [
                {
                    "url": HOOK_URL,
                    "events": ["message", "message.ack", "message.ack.group", "session.status"],
                    "hmac": {"key": SECRET},
                    "customHeaders": [{"name": "X-Tenant", "value": "acme"}],
                }
            ],
        }
    }


async def test_waha_webhook_creates_an_unknown_session_without_starting_it(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(404, WAHA_NOT_FOUND)
    stub.reply(201, waha_info("STOPPED"))
    await adapter(WahaProvider, stub, http).set_webhook(SESSION, WEBHOOK)
    assert calls(stub) == [("GET", f"/api/sessions/{SESSION}"), ("POST", "/api/sessions")]
    assert stub.last.json["name"] == SESSION and "start" not in stub.last.json
    assert stub.last.json["config"]["webhooks"][0]["hmac"] == {"key": SECRET}


async def test_waha_qr_reads_the_text_and_the_image(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, {"value": QR_TEXT})
    stub.reply(200, {"mimetype": "image/png", "data": PNG_B64})
    qr = await adapter(WahaProvider, stub, http).get_qr(SESSION)
    assert qr == QrCode(raw=QR_TEXT, png=PNG)
    raw, image = stub.requests
    assert (raw.path, raw.query) == (f"/api/{SESSION}/auth/qr", {"format": "raw"})
    assert (image.path, image.query) == (f"/api/{SESSION}/auth/qr", {"format": "image"})
    assert image.headers["Accept"] == "application/json"  # else WAHA streams the PNG itself


@pytest.mark.parametrize("status", ["WORKING", "STARTING"])
async def test_waha_no_qr_while_working_or_starting(
    stub: ProviderStub, http: aiohttp.ClientSession, status: str
) -> None:
    stub.reply(422, waha_guard(status))
    assert await adapter(WahaProvider, stub, http).get_qr(SESSION) is None


async def test_waha_qr_of_a_failed_or_unknown_session_is_an_error(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(422, waha_guard("FAILED"))
    error = await fails(adapter(WahaProvider, stub, http).get_qr(SESSION))
    assert (error.error_class, error.restriction) == (ErrorClass.RESTRICTED, Restriction.DISCONNECTED)
    unknown = {
        "statusCode": 404,
        "message": f"We didn't find a session with name '{SESSION}'.\nPlease start it first by using "
        f"POST /api/sessions/{SESSION}/start request",
        "error": "Not Found",
    }
    stub.reset()
    stub.reply(404, unknown)
    error = await fails(adapter(WahaProvider, stub, http).get_qr(SESSION))
    assert error.code == SESSION_NOT_FOUND


async def test_waha_pairing_code(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, {"code": "ABCD-ABCD"})
    code = await adapter(WahaProvider, stub, http).request_pairing_code(SESSION, f"+{PHONE}")
    assert code == PairingCode("ABCD-ABCD")
    assert (stub.last.method, stub.last.path) == ("POST", f"/api/{SESSION}/auth/request-code")
    assert stub.last.json == {"phoneNumber": PHONE}


async def test_waha_pairing_code_outside_scan_qr_code(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(
        422,
        {
            "statusCode": 422,
            "message": "Can request code only in SCAN_QR_CODE status. The current status is WORKING",
            "error": "Unprocessable Entity",
        },
    )
    error = await fails(adapter(WahaProvider, stub, http).request_pairing_code(SESSION, PHONE))
    assert (error.error_class, error.code) == (ErrorClass.PERMANENT, "http_422")


async def test_a_pairing_code_needs_a_phone_number(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    error = await fails(adapter(WahaProvider, stub, http).request_pairing_code(SESSION, "not-a-phone"))
    assert error.error_class is ErrorClass.PERMANENT and not stub.requests


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("WORKING", ConnectionState.CONNECTED),
        ("SCAN_QR_CODE", ConnectionState.QR_REQUIRED),
        ("STARTING", ConnectionState.CONNECTING),
        ("FAILED", ConnectionState.DISCONNECTED),
        ("STOPPED", ConnectionState.DISCONNECTED),
    ],
)
async def test_waha_status(
    stub: ProviderStub, http: aiohttp.ClientSession, status: str, state: ConnectionState
) -> None:
    stub.reply(200, waha_info(status))
    assert await adapter(WahaProvider, stub, http).session_status(SESSION) == SessionStatus(state, status)
    assert calls(stub) == [("GET", f"/api/sessions/{SESSION}")]  # no capping call


async def test_waha_status_of_an_unknown_session(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(404, WAHA_NOT_FOUND)
    error = await fails(adapter(WahaProvider, stub, http).session_status(SESSION))
    assert (error.error_class, error.restriction, error.code) == (
        ErrorClass.RESTRICTED,
        Restriction.DISCONNECTED,
        SESSION_NOT_FOUND,
    )


async def test_waha_logout_and_delete(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, waha_info("SCAN_QR_CODE"))
    waha = adapter(WahaProvider, stub, http)
    await waha.logout_session(SESSION)
    stub.reset()
    stub.reply(200, text="")
    await waha.delete_session(SESSION)
    assert calls(stub) == [("DELETE", f"/api/sessions/{SESSION}")]


async def test_waha_logout_and_delete_of_an_unknown_session_are_done(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(404, WAHA_NOT_FOUND)
    waha = adapter(WahaProvider, stub, http)
    await waha.logout_session(SESSION)
    await waha.delete_session(SESSION)
    assert len(stub.requests) == 2


async def test_a_rejected_key_is_restricted_unauthorized(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(401, {"message": "Unauthorized", "statusCode": 401})
    error = await fails(adapter(WahaProvider, stub, http).delete_session(SESSION))
    assert (error.error_class, error.restriction) == (ErrorClass.RESTRICTED, Restriction.UNAUTHORIZED)


async def test_an_unreachable_provider_is_transient(
    closed_port_url: str, http: aiohttp.ClientSession
) -> None:
    waha = WahaProvider(base_url=closed_port_url, api_key=KEY, session=http, timeout=5)
    error = await fails(waha.start_session(SESSION))
    assert (error.error_class, error.code) == (ErrorClass.TRANSIENT, "connect_failed")


# --- Evolution API -------------------------------------------------------------------------------------


def evolution_error(status: int, error: str, message: str) -> dict[str, Any]:
    return {"status": status, "error": error, "response": {"message": [message]}}


EVOLUTION_CREATED = {
    "instance": {
        "instanceName": SESSION,
        "instanceId": "af6c5b7c-ee27-4f94-9ea8-192393746ddd",
        "integration": "WHATSAPP-BAILEYS",
        "webhookWaBusiness": None,
        "accessTokenWaBusiness": "",
        "status": "close",
    },
    "hash": "INSTANCE-TOKEN-1F2E3D",
    "webhook": {},
    "settings": {"rejectCall": False},
}
EVOLUTION_QR = {"pairingCode": None, "code": QR_TEXT, "base64": DATA_URL, "count": 1}
EVOLUTION_IN_USE = evolution_error(403, "Forbidden", f'This name "{SESSION}" is already in use.')
EVOLUTION_UNKNOWN = evolution_error(404, "Not Found", f'The "{SESSION}" instance does not exist')


async def test_evolution_start_creates_then_connects(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, EVOLUTION_CREATED)
    stub.reply(200, EVOLUTION_QR)
    status = await adapter(EvolutionProvider, stub, http).start_session(SESSION)
    assert status == SessionStatus(ConnectionState.QR_REQUIRED, "qrcode", QrCode(raw=QR_TEXT, png=PNG))
    assert calls(stub) == [("POST", "/instance/create"), ("GET", f"/instance/connect/{SESSION}")]
    create = stub.requests[0]
    assert create.json == {"instanceName": SESSION, "integration": "WHATSAPP-BAILEYS", "qrcode": False}
    assert create.headers["apikey"] == KEY


async def test_evolution_start_of_an_open_instance(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(403, EVOLUTION_IN_USE)
    stub.reply(200, {"instance": {"instanceName": SESSION, "state": "open"}})
    status = await adapter(EvolutionProvider, stub, http).start_session(SESSION)
    assert status == SessionStatus(ConnectionState.CONNECTED, "open")


async def test_evolution_start_before_the_first_qr(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(403, EVOLUTION_IN_USE)
    stub.reply(200, {"pairingCode": None, "count": 0})  # a closed instance reconnected, no QR yet
    status = await adapter(EvolutionProvider, stub, http).start_session(SESSION)
    assert (status.state, status.qr) == (ConnectionState.CONNECTING, None)


async def test_evolution_connect_failure_in_a_200(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(403, EVOLUTION_IN_USE)
    stub.reply(200, {"error": True, "message": "Error: Connection Closed"})
    error = await fails(adapter(EvolutionProvider, stub, http).start_session(SESSION))
    assert (error.error_class, error.code) == (ErrorClass.TRANSIENT, "connect_failed")


async def test_evolution_refused_create_is_permanent_not_ambiguous(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(400, evolution_error(400, "Bad Request", "Invalid integration"))
    error = await fails(adapter(EvolutionProvider, stub, http).start_session(SESSION))
    assert error.error_class is ErrorClass.PERMANENT


async def test_evolution_webhook(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(201, {"id": "wh1", "url": HOOK_URL, "enabled": True})
    webhook = SessionWebhook(url=HOOK_URL, secret=SECRET, headers={"X-Tenant": "acme"})
    await adapter(EvolutionProvider, stub, http).set_webhook(SESSION, webhook)
    assert calls(stub) == [("POST", f"/webhook/set/{SESSION}")]
    assert stub.last.json == {
        "webhook": {
            "enabled": True,
            "url": HOOK_URL,
            "headers": {"X-Tenant": "acme", "jwt_key": SECRET},
            "byEvents": False,
            "base64": False,
            "events": ["MESSAGES_UPSERT", "MESSAGES_UPDATE", "CONNECTION_UPDATE", "QRCODE_UPDATED"],
        }
    }


async def test_evolution_webhook_creates_an_unknown_instance(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(404, EVOLUTION_UNKNOWN)
    stub.reply(201, EVOLUTION_CREATED)
    stub.reply(201, {"id": "wh1"})
    await adapter(EvolutionProvider, stub, http).set_webhook(SESSION, WEBHOOK)
    assert calls(stub) == [
        ("POST", f"/webhook/set/{SESSION}"),
        ("POST", "/instance/create"),
        ("POST", f"/webhook/set/{SESSION}"),
    ]


async def test_evolution_qr(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, EVOLUTION_QR)
    evolution = adapter(EvolutionProvider, stub, http)
    assert await evolution.get_qr(SESSION) == QrCode(raw=QR_TEXT, png=PNG)
    stub.reset()
    stub.reply(200, {"instance": {"instanceName": SESSION, "state": "open"}})
    assert await evolution.get_qr(SESSION) is None


async def test_evolution_qr_that_is_not_a_png(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, {**EVOLUTION_QR, "base64": "data:image/png;base64,bm90IGEgcG5n"})
    error = await fails(adapter(EvolutionProvider, stub, http).get_qr(SESSION))
    assert (error.error_class, error.code) == (ErrorClass.TRANSIENT, "unexpected_response")


async def test_evolution_pairing_code(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, {**EVOLUTION_QR, "pairingCode": "WZYEH1YY"})
    code = await adapter(EvolutionProvider, stub, http).request_pairing_code(SESSION, PHONE)
    assert code == PairingCode("WZYEH1YY")
    assert (stub.last.path, stub.last.query) == (f"/instance/connect/{SESSION}", {"number": PHONE})


async def test_evolution_pairing_code_comes_with_the_next_qr(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(200, EVOLUTION_QR)  # already connecting: Evolution did not take the number
    error = await fails(adapter(EvolutionProvider, stub, http).request_pairing_code(SESSION, PHONE))
    assert (error.error_class, error.code, error.retry_after) == (
        ErrorClass.TRANSIENT,
        "pairing_code_pending",
        20.0,
    )


async def test_evolution_status_and_unknown_instance(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, {"instance": {"instanceName": SESSION, "state": "connecting"}})
    evolution = adapter(EvolutionProvider, stub, http)
    assert await evolution.session_status(SESSION) == SessionStatus(ConnectionState.CONNECTING, "connecting")
    stub.reset()
    stub.reply(404, EVOLUTION_UNKNOWN)
    error = await fails(evolution.session_status(SESSION))
    assert (error.restriction, error.code) == (Restriction.DISCONNECTED, SESSION_NOT_FOUND)


async def test_evolution_logout_and_delete(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    ok = {"status": "SUCCESS", "error": False, "response": {"message": "Instance logged out"}}
    stub.reply(200, ok)
    evolution = adapter(EvolutionProvider, stub, http)
    await evolution.logout_session(SESSION)
    await evolution.delete_session(SESSION)
    assert calls(stub) == [
        ("DELETE", f"/instance/logout/{SESSION}"),
        ("DELETE", f"/instance/delete/{SESSION}"),
    ]


async def test_evolution_logout_of_a_closed_or_unknown_instance_is_done(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(400, evolution_error(400, "Bad Request", f'The "{SESSION}" instance is not connected'))
    stub.reply(404, EVOLUTION_UNKNOWN)
    evolution = adapter(EvolutionProvider, stub, http)
    await evolution.logout_session(SESSION)  # closed
    await evolution.logout_session(SESSION)  # unknown
    await evolution.delete_session(SESSION)


# --- wuzapi --------------------------------------------------------------------------------------------


def wuzapi_ok(data: dict[str, Any]) -> dict[str, Any]:
    return {"code": 200, "data": data, "success": True}


def wuzapi_error(status: int, message: str) -> dict[str, Any]:
    return {"code": status, "error": message, "success": False}


async def test_wuzapi_start_connects_then_reads_the_status(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(200, wuzapi_ok({"details": "Connected!", "events": "All", "jid": "", "webhook": HOOK_URL}))
    stub.reply(200, wuzapi_ok({"Connected": True, "LoggedIn": False}))
    status = await adapter(WuzapiProvider, stub, http).start_session(SESSION)
    assert status == SessionStatus(ConnectionState.QR_REQUIRED, "Connected=true LoggedIn=false")
    assert calls(stub) == [("POST", "/session/connect"), ("GET", "/session/status")]
    assert stub.requests[0].json == {"Subscribe": ["All"], "Immediate": True}
    assert stub.requests[0].headers["token"] == KEY


async def test_wuzapi_start_of_a_running_client(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(500, wuzapi_error(500, "Already Connected"))
    stub.reply(200, wuzapi_ok({"Connected": True, "LoggedIn": True}))
    status = await adapter(WuzapiProvider, stub, http).start_session(SESSION)
    assert status.state is ConnectionState.CONNECTED


async def test_wuzapi_webhook_and_its_signing_key(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, wuzapi_ok({"webhook": HOOK_URL}))
    stub.reply(200, wuzapi_ok({"Details": "HMAC configuration saved successfully"}))
    await adapter(WuzapiProvider, stub, http).set_webhook(SESSION, WEBHOOK)
    assert calls(stub) == [("POST", "/webhook"), ("POST", "/session/hmac/config")]
    assert stub.requests[0].json == {"webhookURL": HOOK_URL, "events": ["All"]}
    assert stub.requests[1].json == {"hmac_key": SECRET}


async def test_wuzapi_that_cannot_sign_webhooks(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, wuzapi_ok({"webhook": HOOK_URL}))
    stub.reply(404, text="404 page not found")  # gorilla/mux: a wuzapi before the HMAC routes
    error = await fails(adapter(WuzapiProvider, stub, http).set_webhook(SESSION, WEBHOOK))
    assert (error.error_class, error.code) == (ErrorClass.PERMANENT, "webhook_signing_unsupported")


async def test_wuzapi_webhook_headers_are_refused(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    webhook = SessionWebhook(url=HOOK_URL, secret=SECRET, headers={"X-Tenant": "acme"})
    error = await fails(adapter(WuzapiProvider, stub, http).set_webhook(SESSION, webhook))
    assert error.code == "webhook_headers_unsupported" and not stub.requests


async def test_wuzapi_qr(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, wuzapi_ok({"QRCode": DATA_URL}))
    wuzapi = adapter(WuzapiProvider, stub, http)
    assert await wuzapi.get_qr(SESSION) == QrCode(raw="", png=PNG)  # wuzapi serves only the image
    assert (stub.last.method, stub.last.path) == ("GET", "/session/qr")
    stub.reset()
    stub.reply(200, wuzapi_ok({"QRCode": ""}))  # before the first QR, after a QR timeout
    assert await wuzapi.get_qr(SESSION) is None


async def test_wuzapi_qr_when_logged_in_or_without_a_client(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(500, wuzapi_error(500, "Already Loggedin"))
    wuzapi = adapter(WuzapiProvider, stub, http)
    assert await wuzapi.get_qr(SESSION) is None
    stub.reset()
    stub.reply(500, wuzapi_error(500, "No session"))
    error = await fails(wuzapi.get_qr(SESSION))
    assert (error.error_class, error.restriction) == (ErrorClass.RESTRICTED, Restriction.DISCONNECTED)


async def test_wuzapi_pairing_code(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, wuzapi_ok({"LinkingCode": "9H3J-KQ2L"}))
    code = await adapter(WuzapiProvider, stub, http).request_pairing_code(SESSION, PHONE)
    assert code == PairingCode("9H3J-KQ2L")
    assert (stub.last.path, stub.last.json) == ("/session/pairphone", {"Phone": PHONE})


async def test_wuzapi_pairing_code_once_paired(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(400, wuzapi_error(400, "Already paired"))
    error = await fails(adapter(WuzapiProvider, stub, http).request_pairing_code(SESSION, PHONE))
    assert error.error_class is ErrorClass.PERMANENT


async def test_wuzapi_logout(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, wuzapi_ok({"Details": "Logged out"}))
    wuzapi = adapter(WuzapiProvider, stub, http)
    await wuzapi.logout_session(SESSION)
    assert calls(stub) == [("POST", "/session/logout")]
    stub.reset()
    stub.reply(500, wuzapi_error(500, "Could not logout as it was not logged in"))
    await wuzapi.logout_session(SESSION)  # nothing to log out
    stub.reset()
    stub.reply(500, wuzapi_error(500, "No session"))
    error = await fails(wuzapi.logout_session(SESSION))  # no client: wuzapi cannot reach the device
    assert error.restriction is Restriction.DISCONNECTED


async def test_wuzapi_delete_logs_out_and_disconnects(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(500, wuzapi_error(500, "No session"))
    await adapter(WuzapiProvider, stub, http).delete_session(SESSION)
    assert calls(stub) == [("POST", "/session/logout"), ("POST", "/session/disconnect")]


# --- TurboZap ------------------------------------------------------------------------------------------


def turbozap_ok(data: dict[str, Any]) -> dict[str, Any]:
    return {"success": True, "data": data}


def turbozap_error(message: str, code: str | None = None) -> dict[str, Any]:
    error = {"message": message} if code is None else {"code": code, "message": message}
    return {"success": False, "error": error}


TURBOZAP_UNKNOWN = turbozap_error("Instance not found")


async def test_turbozap_start_creates_then_connects(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    created = {"id": "7f1f0c2e-0d1c-4f4e-9a5e-3c1b2a0d9e8f", "name": SESSION, "api_key": "tz-instance-key"}
    stub.reply(201, turbozap_ok({**created, "status": "disconnected"}))
    stub.reply(
        200, turbozap_ok({"name": SESSION, "status": "connecting", "message": "check QR code endpoint"})
    )
    status = await adapter(TurboZapProvider, stub, http).start_session(SESSION)
    assert status == SessionStatus(ConnectionState.CONNECTING, "connecting")
    assert calls(stub) == [("POST", "/instance/create"), ("POST", f"/instance/{SESSION}/connect")]
    assert stub.requests[0].json == {"name": SESSION}
    assert stub.requests[0].headers["X-API-Key"] == KEY


async def test_turbozap_start_of_an_existing_instance(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(409, turbozap_error("Instance with this name already exists", "CONFLICT"))
    stub.reply(200, turbozap_ok({"name": SESSION, "status": "connecting"}))
    status = await adapter(TurboZapProvider, stub, http).start_session(SESSION)
    assert status.state is ConnectionState.CONNECTING


async def test_turbozap_webhook(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, turbozap_ok({"url": HOOK_URL, "events": [], "enabled": True}))
    await adapter(TurboZapProvider, stub, http).set_webhook(SESSION, WEBHOOK)
    assert calls(stub) == [("POST", f"/api/webhook/{SESSION}/set")]
    assert stub.last.json == {"url": HOOK_URL, "headers": {STATIC_SECRET_HEADER: SECRET}, "enabled": True}


async def test_turbozap_webhook_creates_an_unknown_instance(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(404, TURBOZAP_UNKNOWN)
    stub.reply(201, turbozap_ok({"name": SESSION, "status": "disconnected"}))
    stub.reply(200, turbozap_ok({"url": HOOK_URL}))
    await adapter(TurboZapProvider, stub, http).set_webhook(SESSION, WEBHOOK)
    assert [path for _, path in calls(stub)] == [
        f"/api/webhook/{SESSION}/set",
        "/instance/create",
        f"/api/webhook/{SESSION}/set",
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"name": SESSION, "status": "qrcode", "qr_code": DATA_URL, "code": QR_TEXT}, QrCode(QR_TEXT, PNG)),
        ({"name": SESSION, "status": "connected"}, None),
        ({"name": SESSION, "status": "pending"}, None),
    ],
)
async def test_turbozap_qr(
    stub: ProviderStub, http: aiohttp.ClientSession, data: dict[str, Any], expected: QrCode | None
) -> None:
    stub.reply(200, turbozap_ok(data))
    assert await adapter(TurboZapProvider, stub, http).get_qr(SESSION) == expected
    assert (stub.last.method, stub.last.path) == ("GET", f"/instance/{SESSION}/qrcode")


async def test_turbozap_has_no_pairing_code(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    error = await fails(adapter(TurboZapProvider, stub, http).request_pairing_code(SESSION, PHONE))
    assert (error.error_class, error.code) == (ErrorClass.PERMANENT, "pairing_code_unsupported")
    assert not stub.requests


async def test_turbozap_status_logout_and_delete(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, turbozap_ok({"name": SESSION, "status": "qrcode"}))
    turbozap = adapter(TurboZapProvider, stub, http)
    assert await turbozap.session_status(SESSION) == SessionStatus(ConnectionState.QR_REQUIRED, "qrcode")
    stub.reset()
    stub.reply(200, turbozap_ok({"message": "done"}))
    await turbozap.logout_session(SESSION)
    await turbozap.delete_session(SESSION)
    assert calls(stub) == [("POST", f"/instance/{SESSION}/logout"), ("DELETE", f"/instance/{SESSION}")]


async def test_turbozap_unknown_instance(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(404, TURBOZAP_UNKNOWN)
    turbozap = adapter(TurboZapProvider, stub, http)
    await turbozap.logout_session(SESSION)
    await turbozap.delete_session(SESSION)
    error = await fails(turbozap.get_qr(SESSION))
    assert (error.restriction, error.code) == (Restriction.DISCONNECTED, SESSION_NOT_FOUND)
