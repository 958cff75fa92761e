"""Health probes: ask an instance's provider, on a schedule, how the instance is, where the provider can say.

Webhooks tell WhatLead about changes as they happen, but a lost webhook, a provider restart or a state
that never produces an event (WAHA's new-chat quota filling up) stays invisible without asking. A probe
asks through the adapter's own HTTP plumbing, so failures come out as the adapter's classified
`ProviderError` (a probe is idempotent: a 5xx or a refused connection is TRANSIENT, a 401 RESTRICTED
UNAUTHORIZED).

What each provider answers, where it comes from and what it cannot say: docs/providers.md, "Health probes".

- WAHA (and the simulator, which speaks WAHA): `GET /api/sessions/{session}` gives the session status and
  `me.reachoutTimelock`; a WORKING session is also asked `GET /api/sessions/{session}/capping` (WAHA
  2026.8.1, GOWS) for the new-chat quota, falling back to `me.messageCapping`.
- Evolution API: `GET /instance/connectionState/{instance}`; a closed one is looked up in
  `GET /instance/fetchInstances` for the code that closed it (401 logged out, 402/403/406 banned).
- wuzapi: `GET /session/status` (the user token is the instance).
- TurboZap: `GET /instance/{name}/status`.

The status call decides the probe: its failure is raised. The extra calls (WAHA's capping, Evolution's
close code) only add detail: when they fail, or the provider does not have them, the detail is left out
("not reported") and the next probe asks again.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from yarl import URL

from libs.providers.base import HttpProvider, dig
from libs.providers.capabilities import ProviderProfile
from libs.providers.port import ErrorClass, ProviderError, Restriction, WhatsAppProvider
from libs.seedwork.shared_kernel import ConnectionState, Provider, ProviderEngine


class CappingLevel(StrEnum):
    """How close the account is to WhatsApp's per-cycle quota of new chats (WAHA `MessageCappingStatus`)."""

    NONE = "NONE"
    FIRST_WARNING = "FIRST_WARNING"
    SECOND_WARNING = "SECOND_WARNING"
    CAPPED = "CAPPED"  # new chats are blocked until the cycle ends


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderHealth:
    """One probe's answer. Every field is None when the provider did not report it.

    connection_reason: the provider's own word for the state ("WORKING", "close", "open", …), log-safe;
        Evolution adds the close code ("close:401"), wuzapi names its two flags.
    timelocked / timelock_until: WAHA's `me.reachoutTimelock` (`isActive`, `timeEnforcementEnds`).
    capping / quota_used / quota_total: WAHA's new-chat capping; quota_total is None when WAHA says the
        account has no cap (-1).
    """

    connection: ConnectionState | None = None
    connection_reason: str = ""
    timelocked: bool | None = None
    timelock_until: datetime | None = None
    capping: CappingLevel | None = None
    quota_used: int | None = None
    quota_total: int | None = None


Probe = Callable[[HttpProvider, ProviderProfile, str], Awaitable[ProviderHealth]]

# The adapter each provider is spoken to with (libs/providers/factory.py); the simulator speaks WAHA.
_ADAPTER_NAME = {
    Provider.WAHA: "WAHA",
    Provider.SIMULATOR: "WAHA",
    Provider.EVOLUTION: "EVOLUTION",
    Provider.WUZAPI: "WUZAPI",
    Provider.TURBOZAP: "TURBOZAP",
}
# WAHA added `GET /api/sessions/{session}` in 2024.5.2 (devlikeapro/waha src/api/sessions.controller.ts
# at faf8d053ddfc134b1371c373a2044eed74a62a89; 2024.4.3 has only the list and `me`).
_WAHA_SESSION_ENDPOINT = (2024, 5, 2)
# `GET /api/sessions/{session}/capping` and `me.messageCapping`: WAHA 2026.8.1 (devlikeapro/waha#2186).
_WAHA_CAPPING_ENDPOINT = (2026, 8, 1)
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
# A provider word is kept only when it is plainly a word: no digits (phone numbers), no punctuation.
_WORD = re.compile(r"[A-Za-z][A-Za-z_ ]{0,39}")
_MILLISECONDS = 10**11  # as seconds that is year 5138: a larger epoch value is in milliseconds


def can_probe(profile: ProviderProfile) -> bool:
    """True when the provider (at this version, where it matters) has an endpoint to probe."""
    if profile.provider is Provider.WAHA:
        version = _version(profile.version)
        return version is None or version >= _WAHA_SESSION_ENDPOINT
    return profile.provider in _PROBES


async def probe_health(
    adapter: WhatsAppProvider, profile: ProviderProfile, instance_ref: str
) -> ProviderHealth:
    """Ask the provider behind `adapter` how the instance `instance_ref` is.

    Raises the adapter's classified `ProviderError` when the provider cannot be asked; a PERMANENT
    "probe_unsupported" when `can_probe(profile)` is False or `adapter` is not this provider's adapter.
    """
    provider = _ADAPTER_NAME.get(profile.provider)
    if not isinstance(adapter, HttpProvider) or adapter.name != provider or not can_probe(profile):
        raise ProviderError.permanent(
            "probe_unsupported",
            f"no health probe for {profile.provider} with this adapter",
            provider=provider,
        )
    if not instance_ref:
        raise ProviderError.permanent("invalid_request", "instance_ref is required", provider=provider)
    return await _PROBES[profile.provider](adapter, profile, instance_ref)


async def probe_connection(adapter: HttpProvider, instance_ref: str) -> ProviderHealth:
    """Only the connection of the instance (what the session port's status check needs): the status call
    and, for Evolution, the close code; none of the extras (WAHA's capping). Raises like `probe_health`."""
    kind = next((p for p, name in _ADAPTER_NAME.items() if name == adapter.name), None)
    if kind is None:
        raise ProviderError.permanent("probe_unsupported", f"no status call for {adapter.name}")
    if not instance_ref:
        raise ProviderError.permanent("invalid_request", "instance_ref is required", provider=adapter.name)
    if kind is Provider.WAHA:
        session = _json_object(adapter, await _get(adapter, adapter.url("api", "sessions", instance_ref)))
        status = session.get("status")
        return ProviderHealth(connection=_state(status, WAHA_STATES), connection_reason=_word(status))
    return await _PROBES[kind](adapter, ProviderProfile(kind), instance_ref)


# --- WAHA ----------------------------------------------------------------------------------------------

# devlikeapro/waha src/structures/enums.dto.ts `WAHASessionStatus`.
WAHA_STATES = {
    "WORKING": ConnectionState.CONNECTED,
    "SCAN_QR_CODE": ConnectionState.QR_REQUIRED,
    "STARTING": ConnectionState.CONNECTING,
    "FAILED": ConnectionState.DISCONNECTED,  # also how WAHA shows a blocked account; webhooks say more
    "STOPPED": ConnectionState.DISCONNECTED,
}


async def _probe_waha(adapter: HttpProvider, profile: ProviderProfile, instance_ref: str) -> ProviderHealth:
    session = _json_object(adapter, await _get(adapter, adapter.url("api", "sessions", instance_ref)))
    status = session.get("status")
    me = session.get("me")
    timelocked, timelock_until = _waha_timelock(dig(me, "reachoutTimelock"))
    capping = dig(me, "messageCapping")  # WAHA's last known value, refreshed by the engine
    if status == "WORKING" and _waha_offers_capping(profile, session):
        capping = await _waha_fresh_capping(adapter, instance_ref) or capping
    level, used, total = _waha_capping(capping)
    return ProviderHealth(
        connection=_state(status, WAHA_STATES),
        connection_reason=_word(status),
        timelocked=timelocked,
        timelock_until=timelock_until,
        capping=level,
        quota_used=used,
        quota_total=total,
    )


def _waha_timelock(lock: Any) -> tuple[bool | None, datetime | None]:
    """WAHA `ReachoutTimelockData` {enforcementType, isActive, timeEnforcementEnds (unix seconds)}.

    Null means WAHA has seen no enforcement yet, which is not proof there is none (devlikeapro/waha#2219:
    a GOWS 2026.7.2 session answered 463 while it was null), so it stays "not reported". An expired lock
    is kept with `isActive: false`, which is a real "lifted".
    """
    if not isinstance(lock, dict) or not isinstance(lock.get("isActive"), bool):
        return None, None
    active: bool = lock["isActive"]
    return active, (_epoch(lock.get("timeEnforcementEnds")) if active else None)


def _waha_offers_capping(profile: ProviderProfile, session: dict[str, Any]) -> bool:
    """Whether asking `/capping` can be answered: GOWS from 2026.8.1 (the simulator too). NOWEB is asked
    as well (a later WAHA wires it to Baileys' `fetchNewChatMessageCap`); WEBJS never has it."""
    if profile.provider is Provider.SIMULATOR:
        return True
    engine = profile.engine
    if engine is ProviderEngine.UNSPECIFIED:  # WAHA names its engine in the session answer
        engine = _engine(dig(session, "engine", "engine"))
    if engine is ProviderEngine.WEBJS:
        return False
    version = _version(profile.version)
    return version is None or version >= _WAHA_CAPPING_ENDPOINT


async def _waha_fresh_capping(adapter: HttpProvider, instance_ref: str) -> dict[str, Any] | None:
    """A fresh `MessageCappingData`, or None when WAHA does not offer it here: 404 before 2026.8.1, 422
    "not implemented by the engine", or a live fetch from WhatsApp that failed this time."""
    try:
        data = await _get(adapter, adapter.url("api", "sessions", instance_ref, "capping"))
    except ProviderError:
        return None
    return data if isinstance(data, dict) else None


def _waha_capping(data: Any) -> tuple[CappingLevel | None, int | None, int | None]:
    """WAHA `MessageCappingData` {cappingStatus, totalQuota (-1: no cap), usedQuota, cycleStart, cycleEnd,
    mvStatus, oteStatus} (devlikeapro/waha src/structures/sessions.dto.ts, 2026.8.1)."""
    if not isinstance(data, dict):
        return None, None, None
    status = data.get("cappingStatus")
    # WhatsApp may add levels ("treat it as an open set"): one we cannot rank is not reported.
    if not isinstance(status, str) or status not in CappingLevel.__members__:
        return None, None, None
    return CappingLevel(status), _count(data.get("usedQuota")), _count(data.get("totalQuota"))


# --- Evolution API -------------------------------------------------------------------------------------

# Baileys' `connection` as Evolution keeps it (`stateConnection.state`).
_EVOLUTION_STATES = {
    "open": ConnectionState.CONNECTED,
    "connecting": ConnectionState.CONNECTING,
    "close": ConnectionState.DISCONNECTED,
}
# The close codes Evolution does not reconnect after (`codesToNotReconnect` in
# whatsapp.baileys.service.ts): 401 logged out; 402 temporary ban, 403 locked, 406 banned (whatsmeow's names).
_EVOLUTION_CLOSE_CODES = {
    401: ConnectionState.LOGGED_OUT,
    402: ConnectionState.BANNED,
    403: ConnectionState.BANNED,
    406: ConnectionState.BANNED,
}


async def _probe_evolution(
    adapter: HttpProvider, profile: ProviderProfile, instance_ref: str
) -> ProviderHealth:
    url = adapter.url("instance", "connectionState", instance_ref)
    answer = _json_object(adapter, await _get(adapter, url))
    state = dig(answer, "instance", "state")  # absent when the instance is not loaded in Evolution
    if state == "close":
        code = await _evolution_close_code(adapter, instance_ref)
        if code in _EVOLUTION_CLOSE_CODES:
            return ProviderHealth(connection=_EVOLUTION_CLOSE_CODES[code], connection_reason=f"close:{code}")
    return ProviderHealth(connection=_state(state, _EVOLUTION_STATES), connection_reason=_word(state))


async def _evolution_close_code(adapter: HttpProvider, instance_ref: str) -> int | None:
    """The code of the instance's last close Evolution did not reconnect after, if that close is the
    instance's latest recorded state.

    Evolution writes `connectionStatus: 'close'` and `disconnectionReasonCode` only for those closes, and
    `connectionStatus: 'open'` on every connect without clearing the code, so the code is current only
    while the stored status is still "close". The answer also carries the instance token: only these two
    fields are read. An instance's own token may be refused here (it opens `fetchInstances` only where
    Evolution saves instances, `auth.guard.ts`), so no failure of this call fails the probe.
    """
    url = adapter.url("instance", "fetchInstances")
    try:
        rows = await _get(adapter, url, params={"instanceName": instance_ref})
    except ProviderError:
        return None
    for row in rows if isinstance(rows, list) else []:
        if (
            isinstance(row, dict)
            and row.get("name") == instance_ref
            and row.get("connectionStatus") == "close"
        ):
            return _count(row.get("disconnectionReasonCode"))
    return None


# --- wuzapi --------------------------------------------------------------------------------------------


async def _probe_wuzapi(adapter: HttpProvider, profile: ProviderProfile, instance_ref: str) -> ProviderHealth:
    """`{code, data: {Connected, LoggedIn}, success}` (asternic/wuzapi handlers.go `GetStatus`); later
    wuzapi-derived servers spell them `connected` / `loggedIn`. Without a running client wuzapi answers
    500 "No session" (after a logout, a disconnect or a QR timeout alike)."""
    try:
        answer = await _get(adapter, adapter.url("session", "status"))
    except ProviderError as error:
        if error.restriction is Restriction.DISCONNECTED:  # the adapter's reading of "No session"
            return ProviderHealth(connection=ConnectionState.DISCONNECTED, connection_reason="No session")
        raise
    data = dig(_json_object(adapter, answer), "data")
    connected = _flag(data, "Connected", "connected")
    logged_in = _flag(data, "LoggedIn", "loggedIn")
    if connected is None or logged_in is None:
        return ProviderHealth()
    # whatsmeow: LoggedIn is true only while the socket is connected and authenticated.
    if connected and logged_in:
        state = ConnectionState.CONNECTED
    elif connected:
        state = ConnectionState.QR_REQUIRED  # wuzapi: "if it's not logged in, use /session/qr"
    elif logged_in:
        state = ConnectionState.CONNECTING
    else:
        state = ConnectionState.DISCONNECTED
    reason = f"Connected={str(connected).lower()} LoggedIn={str(logged_in).lower()}"
    return ProviderHealth(connection=state, connection_reason=reason)


# --- TurboZap ------------------------------------------------------------------------------------------

# jonadableite/TurboZap-api internal/domain/entity/instance.go `InstanceStatus`.
_TURBOZAP_STATES = {
    "connected": ConnectionState.CONNECTED,
    "connecting": ConnectionState.CONNECTING,
    "qrcode": ConnectionState.QR_REQUIRED,
    "disconnected": ConnectionState.DISCONNECTED,  # a logout reads the same
    "error": ConnectionState.DISCONNECTED,
}


async def _probe_turbozap(
    adapter: HttpProvider, profile: ProviderProfile, instance_ref: str
) -> ProviderHealth:
    """`{success, data: {name, status, phone_number?, profile_name?, profile_pic?}}`
    (internal/interface/http/handler/instance_handler.go `GetStatus`)."""
    url = adapter.url("instance", instance_ref, "status")
    status = dig(_json_object(adapter, await _get(adapter, url)), "data", "status")
    return ProviderHealth(connection=_state(status, _TURBOZAP_STATES), connection_reason=_word(status))


_PROBES: dict[Provider, Probe] = {
    Provider.WAHA: _probe_waha,
    Provider.SIMULATOR: _probe_waha,
    Provider.EVOLUTION: _probe_evolution,
    Provider.WUZAPI: _probe_wuzapi,
    Provider.TURBOZAP: _probe_turbozap,
}


# --- asking and reading answers -----------------------------------------------------------------------


async def _get(adapter: HttpProvider, url: URL, *, params: dict[str, str] | None = None) -> Any:
    """GET through the adapter. A probe changes nothing, so an answer a provider's own rules read as "the
    send may have happened" (Evolution's catch-all 400, TurboZap's wrapped 500) is only TRANSIENT here."""
    try:
        return await adapter.request_json("GET", url, params=params, idempotent=True)
    except ProviderError as error:
        if error.error_class is not ErrorClass.AMBIGUOUS:
            raise
        raise ProviderError.transient(
            error.code,
            error.message,
            retry_after=error.retry_after,
            status=error.status,
            provider=error.provider,
        ) from error


def _json_object(adapter: HttpProvider, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ProviderError.transient(
            "unexpected_response", "the status answer is not a JSON object", provider=adapter.name
        )
    return data


def _state(value: Any, states: dict[str, ConnectionState]) -> ConnectionState | None:
    """The mapped state; UNKNOWN for a word the table lacks; None when the provider gave none."""
    if not isinstance(value, str) or not value:
        return None
    return states.get(value, ConnectionState.UNKNOWN)


def _word(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return ""
    return value if _WORD.fullmatch(value) else "unrecognized"


def _flag(data: Any, *keys: str) -> bool | None:
    for key in keys:
        value = dig(data, key)
        if isinstance(value, bool):
            return value
    return None


def _count(value: Any) -> int | None:
    """A non-negative integer, or None (negative means "no cap" in WAHA's quotas)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return int(value)


def _epoch(value: Any) -> datetime | None:
    if isinstance(value, str) and value.isdigit():  # whatsmeow's UnixString, should a proxy pass it on
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    seconds = value / 1000 if value > _MILLISECONDS else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _engine(value: Any) -> ProviderEngine:
    try:
        return ProviderEngine(value)
    except ValueError:
        return ProviderEngine.UNSPECIFIED


def _version(value: str) -> tuple[int, int, int] | None:
    match = _VERSION.match(value.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
