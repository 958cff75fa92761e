"""Contract: health probes ask each provider's real status endpoint and read its real answers.

Answer shapes, with their sources:
- WAHA: `SessionInfo` / `MeInfo` / `ReachoutTimelockData` / `MessageCappingData` in devlikeapro/waha
  `src/structures/sessions.dto.ts` (2026.8.1, PR #2186); errors are NestJS exceptions
  (`{statusCode, message, error}`), `NotImplementedByEngineError` is a 422 (`src/core/exceptions.ts`).
- Evolution API 2.3.6: `instance.controller.ts` `connectionState`, `monitor.service.ts` `instanceInfo`
  (the Prisma `Instance` row), EvolutionAPI/evolution-api at 3454bec79f514995df9a5ea36a3554ab35cf1c82.
- wuzapi: `handlers.go` `GetStatus` and `Respond` at 79ee4cd87a867f3c905574e7a9057b4cb7dbb16c.
- TurboZap: `instance_handler.go` `GetStatus`, `dto/instance_dto.go`, `response/response.go` at
  jonadableite/TurboZap-api 7c79ca258cb3d7677b2c18d33e870ecb2a167204.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from libs.providers import (
    ErrorClass,
    EvolutionProvider,
    ProviderError,
    Restriction,
    TurboZapProvider,
    WahaProvider,
    WuzapiProvider,
)
from libs.providers.base import HttpProvider
from libs.providers.capabilities import ProviderProfile
from libs.providers.health import CappingLevel, ProviderHealth, can_probe, probe_health
from libs.seedwork.shared_kernel import ConnectionState, Provider, ProviderEngine
from tests.contract.providers.stub import ProviderStub

KEY = "probe-key-7f3a9c"
SESSION = "sales-03"
PHONE = "5511987650000"
GOWS = ProviderProfile(Provider.WAHA, "2026.8.1", ProviderEngine.GOWS)
TIMELOCK_ENDS = 1784477333  # unix seconds, WAHA's own example

# GET /api/sessions/{session}: `SessionInfo` (`me` = `MeInfo`), as WAHA GOWS 2026.8.1 answers it.
WAHA_SESSION: dict[str, Any] = {
    "name": SESSION,
    "status": "WORKING",
    "config": {"webhooks": []},
    "me": {
        "id": f"{PHONE}@c.us",
        "lid": "123123@lid",
        "jid": f"{PHONE}:12@s.whatsapp.net",
        "pushName": "Vendas",
        "reachoutTimelock": {
            "enforcementType": "RESTRICT_ALL_COMPANIONS",
            "isActive": True,
            "timeEnforcementEnds": TIMELOCK_ENDS,
        },
        "messageCapping": None,
    },
    "presence": "online",
    "timestamps": {"activity": 1784470000000},
    "engine": {"engine": "GOWS"},
}
# GET /api/sessions/{session}/capping: `MessageCappingData`.
WAHA_CAPPING: dict[str, Any] = {
    "cappingStatus": "FIRST_WARNING",
    "totalQuota": 1000,
    "usedQuota": 640,
    "cycleStart": 1782874800,
    "cycleEnd": 1785553199,
    "mvStatus": "NOT_ELIGIBLE",
    "oteStatus": "NOT_ELIGIBLE",
}


def waha_session(status: str = "WORKING", **me: Any) -> dict[str, Any]:
    return {**WAHA_SESSION, "status": status, "me": {**WAHA_SESSION["me"], **me}}


def adapter(
    kind: Callable[..., HttpProvider], stub: ProviderStub, http: aiohttp.ClientSession
) -> HttpProvider:
    return kind(base_url=stub.base_url, api_key=KEY, session=http, timeout=5)


async def probe(
    stub: ProviderStub,
    http: aiohttp.ClientSession,
    profile: ProviderProfile = GOWS,
    instance_ref: str = SESSION,
) -> ProviderHealth:
    kind = {
        Provider.WAHA: WahaProvider,
        Provider.SIMULATOR: WahaProvider,
        Provider.EVOLUTION: EvolutionProvider,
        Provider.WUZAPI: WuzapiProvider,
        Provider.TURBOZAP: TurboZapProvider,
    }[profile.provider]
    return await probe_health(adapter(kind, stub, http), profile, instance_ref)


async def probe_error(
    stub: ProviderStub, http: aiohttp.ClientSession, profile: ProviderProfile = GOWS
) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await probe(stub, http, profile)
    assert KEY not in str(caught.value)  # nothing secret in what gets logged
    assert PHONE not in str(caught.value)
    return caught.value


def paths(stub: ProviderStub) -> list[str]:
    return [request.path for request in stub.requests]


# --- WAHA ----------------------------------------------------------------------------------------------


async def test_waha_working_session_with_timelock_and_capping(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(200, WAHA_SESSION)
    stub.reply(200, WAHA_CAPPING)
    health = await probe(stub, http)
    assert health == ProviderHealth(
        connection=ConnectionState.CONNECTED,
        connection_reason="WORKING",
        timelocked=True,
        timelock_until=datetime(2026, 7, 19, 16, 8, 53, tzinfo=UTC),
        capping=CappingLevel.FIRST_WARNING,
        quota_used=640,
        quota_total=1000,
    )
    assert paths(stub) == [f"/api/sessions/{SESSION}", f"/api/sessions/{SESSION}/capping"]
    assert all(r.method == "GET" and r.headers["X-Api-Key"] == KEY for r in stub.requests)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("STOPPED", ConnectionState.DISCONNECTED),
        ("STARTING", ConnectionState.CONNECTING),
        ("SCAN_QR_CODE", ConnectionState.QR_REQUIRED),
        ("FAILED", ConnectionState.DISCONNECTED),
        ("PASSKEY_REQUIRED", ConnectionState.UNKNOWN),  # a state this table does not know yet
    ],
)
async def test_waha_session_states(
    stub: ProviderStub, http: aiohttp.ClientSession, status: str, expected: ConnectionState
) -> None:
    stub.reply(200, {"name": SESSION, "status": status, "me": None, "engine": {"engine": "GOWS"}})
    health = await probe(stub, http)
    assert (health.connection, health.connection_reason) == (expected, status)
    assert paths(stub) == [f"/api/sessions/{SESSION}"]  # only a WORKING session is asked for its quota


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"cappingStatus": "NONE", "totalQuota": 1000, "usedQuota": 12}, (CappingLevel.NONE, 12, 1000)),
        (
            {"cappingStatus": "SECOND_WARNING", "totalQuota": 1000, "usedQuota": 910},
            (CappingLevel.SECOND_WARNING, 910, 1000),
        ),
        (
            {"cappingStatus": "CAPPED", "totalQuota": 1000, "usedQuota": 1000},
            (CappingLevel.CAPPED, 1000, 1000),
        ),
        ({"cappingStatus": "NONE", "totalQuota": -1, "usedQuota": 0}, (CappingLevel.NONE, 0, None)),  # no cap
        ({"cappingStatus": "THIRD_WARNING", "totalQuota": 5, "usedQuota": 4}, (None, None, None)),  # unknown
    ],
)
async def test_waha_capping_levels_and_quotas(
    stub: ProviderStub, http: aiohttp.ClientSession, answer: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    stub.reply(200, WAHA_SESSION)
    stub.reply(200, {**WAHA_CAPPING, **answer})
    health = await probe(stub, http)
    assert (health.capping, health.quota_used, health.quota_total) == expected


async def test_waha_without_the_capping_endpoint_reports_no_capping(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(200, waha_session(messageCapping=None))
    # NestJS's answer to a route WAHA does not have (before 2026.8.1).
    stub.reply(
        404,
        {"message": f"Cannot GET /api/sessions/{SESSION}/capping", "error": "Not Found", "statusCode": 404},
    )
    health = await probe(stub, http, ProviderProfile(Provider.WAHA))  # version unknown: ask anyway
    assert (health.connection, health.capping, health.quota_used, health.quota_total) == (
        ConnectionState.CONNECTED,
        None,
        None,
        None,
    )
    assert health.timelocked is True  # the rest of the answer stands


async def test_waha_engine_without_capping_is_not_reported(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(200, waha_session(messageCapping=None))
    stub.reply(
        422,
        {
            "statusCode": 422,
            "message": "The method is not implemented by the engine.",
            "error": "Unprocessable Entity",
        },
    )
    health = await probe(stub, http, ProviderProfile(Provider.WAHA, "2026.8.1", ProviderEngine.NOWEB))
    assert health.capping is None
    assert health.connection is ConnectionState.CONNECTED


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"statusCode": 500, "exception": {"message": "2 UNKNOWN: context deadline exceeded"}}),
        (401, {"message": "Unauthorized", "statusCode": 401}),  # the next probe's status call will say
    ],
)
async def test_waha_failed_capping_fetch_falls_back_to_the_last_known_value(
    stub: ProviderStub, http: aiohttp.ClientSession, status: int, body: dict[str, Any]
) -> None:
    stub.reply(200, waha_session(messageCapping={**WAHA_CAPPING, "cappingStatus": "SECOND_WARNING"}))
    stub.reply(status, body)
    health = await probe(stub, http)
    assert (health.capping, health.quota_used, health.quota_total) == (CappingLevel.SECOND_WARNING, 640, 1000)


@pytest.mark.parametrize(
    ("profile", "engine_in_answer"),
    [
        (ProviderProfile(Provider.WAHA, "2026.8.1", ProviderEngine.WEBJS), "WEBJS"),
        (ProviderProfile(Provider.WAHA, "", ProviderEngine.UNSPECIFIED), "WEBJS"),  # WAHA names it
        (ProviderProfile(Provider.WAHA, "2026.7.2", ProviderEngine.GOWS), "GOWS"),  # before the endpoint
    ],
)
async def test_waha_capping_is_not_asked_where_it_cannot_exist(
    stub: ProviderStub, http: aiohttp.ClientSession, profile: ProviderProfile, engine_in_answer: str
) -> None:
    stub.reply(200, {**waha_session(messageCapping=None), "engine": {"engine": engine_in_answer}})
    health = await probe(stub, http, profile)
    assert paths(stub) == [f"/api/sessions/{SESSION}"]
    assert (health.connection, health.capping) == (ConnectionState.CONNECTED, None)


@pytest.mark.parametrize(
    ("me", "expected"),
    [
        ({"reachoutTimelock": None}, (None, None)),  # WAHA has seen no enforcement: not proof of none
        (
            {
                "reachoutTimelock": {
                    "enforcementType": "DEFAULT",
                    "isActive": False,
                    "timeEnforcementEnds": 17,
                }
            },
            (False, None),  # expired: lifted
        ),
        (
            {
                "reachoutTimelock": {
                    "enforcementType": "DEFAULT",
                    "isActive": True,
                    "timeEnforcementEnds": None,
                }
            },
            (True, None),
        ),
        (
            {"reachoutTimelock": {"isActive": True, "timeEnforcementEnds": TIMELOCK_ENDS * 1000}},  # ms
            (True, datetime(2026, 7, 19, 16, 8, 53, tzinfo=UTC)),
        ),
    ],
)
async def test_waha_reachout_timelock(
    stub: ProviderStub, http: aiohttp.ClientSession, me: dict[str, Any], expected: tuple[Any, Any]
) -> None:
    stub.reply(200, waha_session(**me))
    stub.reply(200, WAHA_CAPPING)
    health = await probe(stub, http)
    assert (health.timelocked, health.timelock_until) == expected


async def test_waha_before_timelocks_and_capping_reports_only_the_state(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    # WAHA 2024.10: `me` is only {id, pushName}.
    stub.reply(
        200, {"name": SESSION, "status": "WORKING", "me": {"id": f"{PHONE}@c.us", "pushName": "Vendas"}}
    )
    health = await probe(stub, http, ProviderProfile(Provider.WAHA, "2024.10.8", ProviderEngine.NOWEB))
    assert health == ProviderHealth(connection=ConnectionState.CONNECTED, connection_reason="WORKING")


async def test_simulator_is_probed_like_waha_gows(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, waha_session(reachoutTimelock=None))
    stub.reply(200, {**WAHA_CAPPING, "cappingStatus": "CAPPED", "usedQuota": 1000})
    health = await probe(stub, http, ProviderProfile(Provider.SIMULATOR))
    assert (health.connection, health.capping, health.quota_used) == (
        ConnectionState.CONNECTED,
        CappingLevel.CAPPED,
        1000,
    )
    assert paths(stub)[-1] == f"/api/sessions/{SESSION}/capping"


# --- errors (the adapter's classification) -------------------------------------------------------------


async def test_wrong_key_restricts(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(401, {"message": "Unauthorized", "statusCode": 401})
    error = await probe_error(stub, http)
    assert (error.error_class, error.restriction, error.status) == (
        ErrorClass.RESTRICTED,
        Restriction.UNAUTHORIZED,
        401,
    )


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_transient(
    stub: ProviderStub, http: aiohttp.ClientSession, status: int
) -> None:
    stub.reply(status, {"statusCode": status, "message": f"apikey={KEY} for {PHONE}"})
    error = await probe_error(stub, http)
    # A probe changes nothing, so even a 504 (AMBIGUOUS for a send) is only worth a retry.
    assert (error.error_class, error.code) == (ErrorClass.TRANSIENT, f"http_{status}")


async def test_refused_connection_is_transient(closed_port_url: str, http: aiohttp.ClientSession) -> None:
    provider = WahaProvider(base_url=closed_port_url, api_key=KEY, session=http, timeout=2)
    with pytest.raises(ProviderError) as caught:
        await probe_health(provider, GOWS, SESSION)
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.TRANSIENT, "connect_failed")
    assert KEY not in str(caught.value)


async def test_slow_answer_is_transient(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, WAHA_SESSION, delay=1.0)
    provider = WahaProvider(base_url=stub.base_url, api_key=KEY, session=http, timeout=0.2)
    with pytest.raises(ProviderError) as caught:
        await probe_health(provider, GOWS, SESSION)
    assert caught.value.error_class is ErrorClass.TRANSIENT


async def test_unknown_session(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(404, {"statusCode": 404, "message": "Session not found", "error": "Not Found"})
    error = await probe_error(stub, http)
    assert (error.error_class, error.restriction) == (ErrorClass.RESTRICTED, Restriction.DISCONNECTED)


async def test_an_answer_that_is_not_a_status(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, [{"name": SESSION, "status": "WORKING"}])  # a list, as `GET /api/sessions` answers
    error = await probe_error(stub, http)
    assert (error.error_class, error.code) == (ErrorClass.TRANSIENT, "unexpected_response")


async def test_provider_words_are_log_safe(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(200, {"name": SESSION, "status": f"WORKING as {PHONE}", "me": None})
    health = await probe(stub, http)
    assert (health.connection, health.connection_reason) == (ConnectionState.UNKNOWN, "unrecognized")


# --- Evolution API -------------------------------------------------------------------------------------


def evolution_state(state: str | None) -> dict[str, Any]:
    instance: dict[str, Any] = {"instanceName": SESSION}
    if state is not None:
        instance["state"] = state
    return {"instance": instance}


def evolution_row(status: str, code: int | None) -> dict[str, Any]:
    """One Prisma `Instance` row from `fetchInstances` (the token is the instance's own key)."""
    return {
        "id": "cm3x0a1b2c3d4e5f6g7h8i9j0",
        "name": SESSION,
        "connectionStatus": status,
        "ownerJid": f"{PHONE}@s.whatsapp.net",
        "profileName": "Vendas",
        "integration": "WHATSAPP-BAILEYS",
        "number": None,
        "token": "B5C8E7A2-INSTANCE-TOKEN",
        "clientName": "evolution",
        "disconnectionReasonCode": code,
        "disconnectionObject": None
        if code is None
        else json.dumps({"error": {"output": {"statusCode": code}}}),
        "disconnectionAt": None if code is None else "2026-11-30T21:04:11.000Z",
        "_count": {"Message": 10, "Contact": 3, "Chat": 2},
    }


EVOLUTION = ProviderProfile(Provider.EVOLUTION, "2.3.6")


@pytest.mark.parametrize(
    ("state", "expected"),
    [("open", ConnectionState.CONNECTED), ("connecting", ConnectionState.CONNECTING)],
)
async def test_evolution_states(
    stub: ProviderStub, http: aiohttp.ClientSession, state: str, expected: ConnectionState
) -> None:
    stub.reply(200, evolution_state(state))
    health = await probe(stub, http, EVOLUTION)
    assert health == ProviderHealth(connection=expected, connection_reason=state)
    assert (stub.last.method, stub.last.path) == ("GET", f"/instance/connectionState/{SESSION}")
    assert stub.last.headers["apikey"] == KEY


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (401, ConnectionState.LOGGED_OUT),
        (402, ConnectionState.BANNED),
        (403, ConnectionState.BANNED),
        (406, ConnectionState.BANNED),
    ],
)
async def test_evolution_closed_instance_names_why(
    stub: ProviderStub, http: aiohttp.ClientSession, code: int, expected: ConnectionState
) -> None:
    stub.reply(200, evolution_state("close"))
    stub.reply(200, [evolution_row("close", code)])
    health = await probe(stub, http, EVOLUTION)
    assert health == ProviderHealth(connection=expected, connection_reason=f"close:{code}")
    assert (stub.last.path, stub.last.query) == ("/instance/fetchInstances", {"instanceName": SESSION})
    assert "INSTANCE-TOKEN" not in repr(health)


@pytest.mark.parametrize(
    "rows",
    [
        [evolution_row("open", 401)],  # reconnected since that logout: the code is stale
        [evolution_row("close", None)],
        [],
    ],
)
async def test_evolution_closed_without_a_current_code_is_disconnected(
    stub: ProviderStub, http: aiohttp.ClientSession, rows: list[dict[str, Any]]
) -> None:
    stub.reply(200, evolution_state("close"))
    stub.reply(200, rows)
    health = await probe(stub, http, EVOLUTION)
    assert health == ProviderHealth(connection=ConnectionState.DISCONNECTED, connection_reason="close")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"status": 500, "error": "Internal Server Error", "response": {"message": "db down"}}),
        # An instance token where Evolution does not save instances (auth.guard.ts).
        (401, {"status": 401, "error": "Unauthorized", "response": {"message": "Unauthorized"}}),
    ],
)
async def test_evolution_close_code_lookup_failing_still_answers(
    stub: ProviderStub, http: aiohttp.ClientSession, status: int, body: dict[str, Any]
) -> None:
    stub.reply(200, evolution_state("close"))
    stub.reply(status, body)
    health = await probe(stub, http, EVOLUTION)
    assert health == ProviderHealth(connection=ConnectionState.DISCONNECTED, connection_reason="close")


async def test_evolution_instance_not_loaded_reports_no_state(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    stub.reply(200, evolution_state(None))  # in the database, not in memory: `state` is undefined
    assert await probe(stub, http, EVOLUTION) == ProviderHealth()


async def test_evolution_unknown_instance(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(
        404,
        {
            "status": 404,
            "error": "Not Found",
            "response": {"message": [f'The "{SESSION}" instance does not exist']},
        },
    )
    error = await probe_error(stub, http, EVOLUTION)
    assert (error.restriction, error.code) == (Restriction.DISCONNECTED, "instance_not_found")


async def test_evolution_wrong_key(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(401, {"status": 401, "error": "Unauthorized", "response": {"message": "Unauthorized"}})
    error = await probe_error(stub, http, EVOLUTION)
    assert error.restriction is Restriction.UNAUTHORIZED


# --- wuzapi --------------------------------------------------------------------------------------------

WUZAPI = ProviderProfile(Provider.WUZAPI)


@pytest.mark.parametrize(
    ("connected", "logged_in", "expected"),
    [
        (True, True, ConnectionState.CONNECTED),
        (True, False, ConnectionState.QR_REQUIRED),
        (False, True, ConnectionState.CONNECTING),
        (False, False, ConnectionState.DISCONNECTED),
    ],
)
async def test_wuzapi_flags(
    stub: ProviderStub,
    http: aiohttp.ClientSession,
    connected: bool,
    logged_in: bool,
    expected: ConnectionState,
) -> None:
    stub.reply(200, {"code": 200, "data": {"Connected": connected, "LoggedIn": logged_in}, "success": True})
    health = await probe(stub, http, WUZAPI)
    assert health.connection is expected
    assert health.connection_reason == f"Connected={str(connected).lower()} LoggedIn={str(logged_in).lower()}"
    assert (stub.last.method, stub.last.path) == ("GET", "/session/status")
    assert stub.last.headers["token"] == KEY


async def test_wuzapi_lower_case_answer(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    # Later wuzapi-derived servers: lower-case keys, and the user's token and QR in the same object.
    data = {"id": "1", "connected": True, "loggedIn": True, "token": KEY, "jid": f"{PHONE}:3@s.whatsapp.net"}
    stub.reply(200, {"code": 200, "data": data, "success": True})
    health = await probe(stub, http, WUZAPI)
    assert health.connection is ConnectionState.CONNECTED
    assert KEY not in repr(health)


async def test_wuzapi_without_a_running_client(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(500, {"code": 500, "error": "No session", "success": False})
    health = await probe(stub, http, WUZAPI)
    assert health == ProviderHealth(connection=ConnectionState.DISCONNECTED, connection_reason="No session")


async def test_wuzapi_wrong_token(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(401, {"code": 401, "error": "unauthorized", "success": False})
    error = await probe_error(stub, http, WUZAPI)
    assert (error.error_class, error.restriction) == (ErrorClass.RESTRICTED, Restriction.UNAUTHORIZED)


async def test_wuzapi_server_error(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(502, text="<html>Bad Gateway</html>")
    error = await probe_error(stub, http, WUZAPI)
    assert error.error_class is ErrorClass.TRANSIENT


# --- TurboZap ------------------------------------------------------------------------------------------

TURBOZAP = ProviderProfile(Provider.TURBOZAP)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("connected", ConnectionState.CONNECTED),
        ("connecting", ConnectionState.CONNECTING),
        ("qrcode", ConnectionState.QR_REQUIRED),
        ("disconnected", ConnectionState.DISCONNECTED),
        ("error", ConnectionState.DISCONNECTED),
    ],
)
async def test_turbozap_states(
    stub: ProviderStub, http: aiohttp.ClientSession, status: str, expected: ConnectionState
) -> None:
    data = {"name": SESSION, "status": status, "phone_number": PHONE, "profile_name": "Vendas"}
    stub.reply(200, {"success": True, "data": data})
    health = await probe(stub, http, TURBOZAP)
    assert health == ProviderHealth(connection=expected, connection_reason=status)
    assert (stub.last.method, stub.last.path) == ("GET", f"/instance/{SESSION}/status")
    assert stub.last.headers["X-API-Key"] == KEY


async def test_turbozap_unknown_instance(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(404, {"success": False, "error": {"message": "Instance not found"}})
    error = await probe_error(stub, http, TURBOZAP)
    assert (error.restriction, error.code) == (Restriction.DISCONNECTED, "instance_not_found")


async def test_turbozap_wrong_key(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    stub.reply(401, {"success": False, "error": {"message": "Invalid API key"}})
    error = await probe_error(stub, http, TURBOZAP)
    assert error.restriction is Restriction.UNAUTHORIZED


# --- which instances can be probed ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (ProviderProfile(Provider.WAHA, "2024.4.3"), False),  # no `GET /api/sessions/{session}` yet
        (ProviderProfile(Provider.WAHA, "2024.5.2"), True),
        (ProviderProfile(Provider.WAHA, ""), True),
        (ProviderProfile(Provider.SIMULATOR), True),
        (ProviderProfile(Provider.EVOLUTION, "2.3.6"), True),
        (ProviderProfile(Provider.WUZAPI), True),
        (ProviderProfile(Provider.TURBOZAP), True),
    ],
)
def test_can_probe(profile: ProviderProfile, expected: bool) -> None:
    assert can_probe(profile) is expected


async def test_unprobeable_profile_asks_nothing(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    error = await probe_error(stub, http, ProviderProfile(Provider.WAHA, "2024.4.3"))
    assert (error.error_class, error.code) == (ErrorClass.PERMANENT, "probe_unsupported")
    assert stub.requests == []


async def test_adapter_of_another_provider_is_refused(
    stub: ProviderStub, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(ProviderError) as caught:
        await probe_health(adapter(EvolutionProvider, stub, http), GOWS, SESSION)
    assert caught.value.code == "probe_unsupported"
    assert stub.requests == []


async def test_an_instance_must_be_named(stub: ProviderStub, http: aiohttp.ClientSession) -> None:
    with pytest.raises(ProviderError) as caught:
        await probe(stub, http, instance_ref="")
    assert (caught.value.error_class, caught.value.code) == (ErrorClass.PERMANENT, "invalid_request")
    assert stub.requests == []
