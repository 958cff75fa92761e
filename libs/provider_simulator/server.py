"""A WhatsApp provider that is not one: an aiohttp server speaking WAHA's HTTP API.

The real `WahaProvider` adapter talks to it unchanged. It keeps sessions (created on first use), accepts
sends and answers with WAHA-shaped messages and ids, records every accepted send in a ledger, can be
told to add latency, fail transiently, answer error 463 or ban a session, and posts WAHA webhooks
(`message.ack` SERVER → DEVICE → READ, `message.ack.group` in groups, replies, `session.status`) to the
session's own webhooks (WAHA's session `config.webhooks`, set with `POST /api/sessions` or
`PUT /api/sessions/{session}`) or, for a session without them, to the global webhook URL.

The webhook bodies follow WAHA's own DTOs (devlikeapro/waha `src/structures/webhooks.dto.ts`:
`WAHAWebhook`, `WAMessageAckBody`, `WASessionStatusBody`; `src/core/abc/session.abc.ts` for how
`session.status` carries the reach-out time-lock).

Per-session quirk modes imitate the providers' oddities (ignored client ids, `@lid` filing, empty
answers, a 500 after the message left, TurboZap's wrapped 500, NOWEB without its store; outcomes.py), and
wuzapi's API is served on the same sessions (wuzapi.py). It also plays the phone: a session created
through `POST /api/sessions` shows rotating QR codes until a control route "scans" one (pairing.py,
README "Linking a number"). Control routes live under `/_sim/` (see `ProviderSimulator._routes`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from libs.provider_simulator.ledger import Ledger
from libs.provider_simulator.outcomes import (
    NOWEB_STORE_MISSING,
    Answer,
    Refusal,
    SendOutcome,
    turbozap_500_body,
)
from libs.provider_simulator.pairing import new_pairing_code, new_qr_text, qr_png
from libs.provider_simulator.settings import SimulatorSettings
from libs.provider_simulator.webhooks import TRACE_HEADERS, WebhookSender, WebhookTarget, received_trace
from libs.provider_simulator.wuzapi import WUZAPI_PREFIXES, WuzapiApi

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SESSION_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_CHAT_ID = re.compile(r"^(\d{6,20}@(c\.us|s\.whatsapp\.net)|\d{5,30}(-\d{5,20})?@g\.us)$")
_PHONE = re.compile(r"^\d{8,15}$")
_CLIENT_ID = re.compile(r"^[0-9A-Za-z]{8,64}$")
_SERIALIZED = re.compile(r"^(true|false)_(.+)_([0-9A-Za-z]+)$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TRANSIENT_STATUSES = (500, 503, 429)
_KIND_BY_ENDPOINT = {
    "sendText": "text",
    "sendImage": "image",
    "sendVideo": "video",
    "sendFile": "file",
    "sendVoice": "voice",
}
_REPLIES = ("Oi! Pode me mandar mais detalhes?", "Obrigado, vou ver.", "Quanto custa?", "👍")
_ENGINE = "GOWS"
# WAHA keeps the last 3 status points in `session.status` payloads (session.abc.ts, `scan` of 3).
_STATUS_POINTS = 3
# How long a simulated reach-out time-lock lasts (WhatsApp's own last hours to days).
_TIMELOCK_S = 6 * 3600
# The group member whose receipts the simulator reports for a message sent to a group.
_GROUP_PARTICIPANT = "5511900000001@c.us"
# WAHA's `MessageCappingStatus` (devlikeapro/waha 2026.8.1 `src/structures/sessions.dto.ts`).
CAPPING_STATUSES = ("NONE", "FIRST_WARNING", "SECOND_WARNING", "CAPPED")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event_id() -> str:
    """ "evt_" + a lower-case ULID (48-bit milliseconds + 80 random bits, Crockford base32), as WAHA's
    event ids (`WAHAWebhook.id`: "lower case ULID format")."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_CROCKFORD[index])
    return "evt_" + "".join(reversed(chars)).lower()


def _raw_id(message_id: str) -> str:
    """The bare message id of a serialized one (`true_<chat>_<id>`); a bare id as it is (WAHA's
    `parseMessageIdSerialized(id, soft=true)`)."""
    match = _SERIALIZED.match(message_id)
    return match.group(3) if match else message_id


def _lid_of(chat: str) -> str:
    """A stable fake `@lid` for a person's chat (groups and other ids stay as they are)."""
    if not chat.endswith(("@c.us", "@s.whatsapp.net")):
        return chat
    digits = int(hashlib.sha256(chat.split("@", 1)[0].encode()).hexdigest()[:13], 16) % 10**15
    return f"{digits:015d}@lid"


def _me_id(session: str) -> str:
    digits = int(hashlib.sha256(session.encode()).hexdigest()[:12], 16) % 10**9
    return f"5511{digits:09d}@c.us"


@dataclass(slots=True)
class SimulatedSession:
    """A simulated WhatsApp session and the behaviour the next sends will meet."""

    name: str
    me: str
    status: str = "WORKING"
    # Linking (README "Linking a number"): a session that is not paired shows a new QR code every
    # `qr_rotate_s` until it is scanned; `banned` tells a ban from a phone-side logout (both FAILED).
    paired: bool = True
    banned: bool = False
    qr: str | None = None
    qr_count: int = 0
    pairing_code: str | None = None
    qr_timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    latency_ms: int = 0
    fail_next: int = 0
    fail_status: int = 500
    timelock_next: int = 0
    timelock_ack_next: int = 0
    # Provider quirks (README "Quirk modes"): modes stay until changed, counters apply to the next N sends.
    ignore_client_id: bool = False
    lid_filing: bool = False
    lookup_store_missing: bool = False
    empty_body_next: int = 0
    error_after_send_next: int = 0
    wrapped_500_next: int = 0
    # WAHA's `ReachoutTimelockData` once a 463 was met (null until then, as WAHA's `me.reachoutTimelock`).
    reachout_timelock: dict[str, Any] | None = None
    # WAHA's `MessageCappingData` once set or fetched (null until then, as WAHA's `me.messageCapping`).
    capping: dict[str, Any] | None = None
    # WAHA's session `config` as last set, and the webhooks parsed from it (None: the global webhook).
    config: dict[str, Any] = field(default_factory=dict)
    webhooks: tuple[WebhookTarget, ...] | None = None
    statuses: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # by serialized id
    raw_ids: dict[str, str] = field(default_factory=dict)  # bare id -> serialized id

    def find_message(self, message_id: str) -> dict[str, Any] | None:
        """A sent message by its serialized or bare id, whatever chat it was filed under."""
        serialized = self.raw_ids.get(_raw_id(message_id))
        return None if serialized is None else self.messages.get(serialized)

    def set_status(self, status: str) -> None:
        self.status = status
        self.statuses.append({"status": status, "timestamp": int(time.time() * 1000)})
        del self.statuses[:-_STATUS_POINTS]

    def me_json(self) -> dict[str, Any]:
        # GOWS/NOWEB `getSessionMeInfo` always carry both keys, null until known (devlikeapro/waha
        # 2026.8.1 `src/structures/sessions.dto.ts` MeInfo; engines' `getSessionMeInfo`).
        return {
            "id": self.me,
            "pushName": f"Simulator {self.name}",
            "reachoutTimelock": None if self.reachout_timelock is None else dict(self.reachout_timelock),
            "messageCapping": None if self.capping is None else dict(self.capping),
        }

    def waha_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "config": _public_config(self.config),
            "me": self.me_json() if self.paired else None,  # WAHA knows no account before the scan
            "engine": {"engine": _ENGINE},
        }

    def control_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "me": self.me,
            "latency_ms": self.latency_ms,
            "fail_next": self.fail_next,
            "fail_status": self.fail_status,
            "timelock_next": self.timelock_next,
            "timelock_ack_next": self.timelock_ack_next,
            "ignore_client_id": self.ignore_client_id,
            "lid_filing": self.lid_filing,
            "lookup_store_missing": self.lookup_store_missing,
            "empty_body_next": self.empty_body_next,
            "error_after_send_next": self.error_after_send_next,
            "wrapped_500_next": self.wrapped_500_next,
            "capping": self.capping,
            "timelocked": bool(self.reachout_timelock and self.reachout_timelock["isActive"]),
            "webhooks": None if self.webhooks is None else [w.url for w in self.webhooks],
            "banned": self.banned,
            "paired": self.paired,
            "qr": self.qr,
            "qr_count": self.qr_count,
            "pairing_code": self.pairing_code,
            "messages": len(self.messages),
        }


class NotFound(Exception):
    """An unknown session on a route that does not create sessions (404, NestJS shape)."""


class Conflict(Exception):
    """A control action the session's state does not allow (409), e.g. a scan with no QR showing."""


class BadRequest(Exception):
    """A malformed request; answered as NestJS does (400 with a list of messages)."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


def _waha_error(status: int, message: str | list[str], error: str) -> web.Response:
    return web.json_response({"statusCode": status, "message": message, "error": error}, status=status)


def _exception_500(message: str, details: str | None = None) -> web.Response:
    exception: dict[str, Any] = {"message": message, "name": "Error"}
    if details is not None:
        exception.update({"code": 2, "details": details, "metadata": {}})
    return web.json_response({"statusCode": 500, "timestamp": _now_iso(), "exception": exception}, status=500)


class ProviderSimulator:
    """The simulator: state, HTTP app, webhook sender. Use `run_simulator` in tests, the CLI otherwise."""

    def __init__(self, settings: SimulatorSettings | None = None) -> None:
        self.settings = settings or SimulatorSettings()
        self.ledger = Ledger()
        self.sessions: dict[str, SimulatedSession] = {}
        # wuzapi `token` -> session name (a token not bound here names its session directly).
        self.wuzapi_tokens: dict[str, str] = {}
        self.webhooks = self._new_sender()
        self._random = random.Random(self.settings.seed)
        self._ids = itertools.count(1)
        # A per-run prefix keeps generated ids unique across restarts of the simulator.
        self._id_prefix = os.urandom(3).hex().upper()
        self._stored = 0
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self.app = web.Application(
            middlewares=[self._trace_middleware, self._errors_middleware], client_max_size=64 * 1024 * 1024
        )
        self.app.add_routes(self._routes())

    # --- lifecycle -----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the simulator is not running")
        return self._base_url

    async def start(self) -> None:
        await self.webhooks.start()
        # No access log: at thousands of requests a second it would cost more than the handlers.
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port, backlog=1024)
        await site.start()
        port = self._runner.addresses[0][1]
        self._base_url = f"http://{self.settings.host}:{port}"

    async def stop(self) -> None:
        for session in self.sessions.values():
            self._stop_qr(session)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.webhooks.stop()
        self._base_url = None

    def _new_sender(self) -> WebhookSender:
        s = self.settings
        return WebhookSender(
            url=s.webhook_url,
            secret=s.webhook_secret,
            attempts=s.webhook_attempts,
            retry_base_s=s.webhook_retry_base_ms / 1000,
            concurrency=s.webhook_concurrency,
            timeout_s=s.webhook_timeout_s,
            queue_size=s.webhook_queue_size,
        )

    # --- the in-process control API (the /_sim routes call these too) -----------------------------------

    def session(self, name: str) -> SimulatedSession:
        """The session called `name`, created WORKING on first use."""
        session = self.sessions.get(name)
        if session is None:
            session = SimulatedSession(name=name, me=_me_id(name))
            session.set_status("WORKING")
            self.sessions[name] = session
        return session

    def configure_session(
        self,
        name: str,
        *,
        latency_ms: int | None = None,
        fail_next: int | None = None,
        error_before_send_next: int | None = None,
        fail_status: int | None = None,
        timelock_next: int | None = None,
        timelock_ack_next: int | None = None,
        banned: bool | None = None,
        ignore_client_id: bool | None = None,
        lid_filing: bool | None = None,
        lookup_store_missing: bool | None = None,
        empty_body_next: int | None = None,
        error_after_send_next: int | None = None,
        wrapped_500_next: int | None = None,
        capping_status: str | None = None,
        quota_used: int | None = None,
        quota_total: int | None = None,
        wuzapi_token: str | None = None,
    ) -> SimulatedSession:
        """Set what the next sends of `name` meet: added latency, N transient failures before the message
        leaves (`fail_next`, alias `error_before_send_next`: 500, 503 or 429, not recorded), N answers of
        error 463 (GOWS: in the answer), N sends accepted and then failed by an ERROR ack with error 463
        (NOWEB: in a webhook), a ban (status FAILED), and the provider quirks: our id ignored, sent
        messages filed under an `@lid` chat, lookups refused for want of a store, N accepted sends
        answered with an empty body or with a 500, N sends refused with TurboZap's wrapped 500 (a 463 in
        disguise), the capping level and quota, and a wuzapi token bound to the session."""
        if fail_status is not None and fail_status not in _TRANSIENT_STATUSES:
            raise BadRequest(f"fail_status must be one of {list(_TRANSIENT_STATUSES)}")
        if capping_status is not None and capping_status not in CAPPING_STATUSES:
            raise BadRequest(f"capping_status must be one of {list(CAPPING_STATUSES)}")
        counts = {
            "latency_ms": latency_ms,
            "fail_next": fail_next,
            "error_before_send_next": error_before_send_next,
            "timelock_next": timelock_next,
            "timelock_ack_next": timelock_ack_next,
            "empty_body_next": empty_body_next,
            "error_after_send_next": error_after_send_next,
            "wrapped_500_next": wrapped_500_next,
            "quota_used": quota_used,
        }
        negative = sorted(key for key, value in counts.items() if value is not None and value < 0)
        if negative:
            raise BadRequest(f"must not be negative: {', '.join(negative)}")
        if quota_total is not None and quota_total < -1:
            raise BadRequest("quota_total must be -1 (no cap) or more")
        if wuzapi_token is not None and not wuzapi_token:
            raise BadRequest("wuzapi_token must not be empty")
        session = self.session(name)
        # Each given value replaces the session's field of that name; None leaves it as it is.
        fields = {
            "latency_ms": latency_ms,
            "fail_next": fail_next,
            "fail_status": fail_status,
            "timelock_next": timelock_next,
            "timelock_ack_next": timelock_ack_next,
            "ignore_client_id": ignore_client_id,
            "lid_filing": lid_filing,
            "lookup_store_missing": lookup_store_missing,
            "empty_body_next": empty_body_next,
            "error_after_send_next": error_after_send_next,
            "wrapped_500_next": wrapped_500_next,
        }
        if error_before_send_next is not None:  # an alias of fail_next, which it follows (the last one wins)
            fields["fail_next"] = error_before_send_next
        for field_name, value in fields.items():
            if value is not None:
                setattr(session, field_name, value)
        if capping_status is not None or quota_used is not None or quota_total is not None:
            capping = self.capping_of(session)
            if capping_status is not None:
                capping["cappingStatus"] = capping_status
            if quota_used is not None:
                capping["usedQuota"] = quota_used
            if quota_total is not None:
                capping["totalQuota"] = quota_total
        if wuzapi_token is not None:
            self.wuzapi_tokens[wuzapi_token] = name
        if banned is True:
            self.ban(name)
        elif banned is False and session.status != "WORKING":
            self._stop_qr(session)
            session.paired, session.banned = True, False
            self._change_status(session, "WORKING")
        return session

    @staticmethod
    def capping_of(session: SimulatedSession) -> dict[str, Any]:
        """The session's WAHA `MessageCappingData`, NONE with no cap (totalQuota -1) until set."""
        if session.capping is None:
            session.capping = {
                "cappingStatus": "NONE",
                "totalQuota": -1,
                "usedQuota": 0,
                "cycleStart": None,
                "cycleEnd": None,
                "mvStatus": None,
                "oteStatus": None,
            }
        return session.capping

    def session_of_token(self, token: str) -> SimulatedSession | None:
        """The session a wuzapi `token` stands for: the one it was bound to (`wuzapi_token`), else the
        session named like the token; None for a token that can name no session."""
        name = self.wuzapi_tokens.get(token)
        if name is None:
            if not _SESSION_NAME.match(token):
                return None
            name = token
        return self.session(name)

    def ban(self, name: str) -> SimulatedSession:
        """Ban `name`: its sends fail as WAHA fails them; a `session.status` FAILED webhook goes out."""
        session = self.session(name)
        self._stop_qr(session)
        session.banned = True
        if session.status != "FAILED":
            self._change_status(session, "FAILED")
        return session

    # --- linking a number: QR codes, pairing codes, the scan, the phone's logout ---------------------------

    def _new_session(self, name: str) -> SimulatedSession:
        """A session created through WAHA's `POST /api/sessions`: STOPPED, no account linked yet."""
        session = SimulatedSession(name=name, me=_me_id(name), paired=False)
        session.set_status("STOPPED")
        self.sessions[name] = session
        return session

    def start_pairing(self, name: str) -> SimulatedSession:
        """Start an unpaired session as WAHA starts one: STARTING, then SCAN_QR_CODE with a QR code that
        changes every `qr_rotate_s`, each announced by a `session.status` SCAN_QR_CODE webhook (WAHA
        2024.10.8 re-assigns the status, which emits the event, on every QR)."""
        session = self.session(name)
        self._stop_qr(session)
        session.paired = False
        self._change_status(session, "STARTING")
        self._show_qr(session)
        return session

    def _show_qr(self, session: SimulatedSession) -> None:
        session.qr = new_qr_text()
        session.qr_count += 1
        self._change_status(session, "SCAN_QR_CODE")
        loop = asyncio.get_running_loop()
        session.qr_timer = loop.call_later(self.settings.qr_rotate_s, self._rotate_qr, session)

    def _rotate_qr(self, session: SimulatedSession) -> None:
        session.qr_timer = None
        if self.sessions.get(session.name) is session and session.status == "SCAN_QR_CODE":
            self._show_qr(session)

    @staticmethod
    def _stop_qr(session: SimulatedSession) -> None:
        if session.qr_timer is not None:
            session.qr_timer.cancel()
            session.qr_timer = None
        session.qr = None
        session.pairing_code = None

    def scan(self, name: str, code: str | None = None) -> SimulatedSession:
        """The phone scans the QR code (or types the pairing code): the session connects, WORKING.

        `code`, when given, must be the QR text showing now or the last pairing code: a stale code is
        refused (409), as WhatsApp refuses an expired QR."""
        session = self.sessions.get(name)
        if session is None:
            raise NotFound(f"We didn't find a session with name '{name}'")
        if session.status != "SCAN_QR_CODE" or session.qr is None:
            raise Conflict(f"session '{name}' is {session.status}, not showing a QR code")
        if code is not None and code not in (session.qr, session.pairing_code):
            raise Conflict("that code is not the one showing now (expired?)")
        self._stop_qr(session)
        session.paired = True
        self._change_status(session, "WORKING")
        return session

    def unlink(self, name: str) -> SimulatedSession:
        """The phone removes the linked device (Settings → Linked devices → Log out). WAHA NOWEB 2024.10.8
        then marks the session FAILED and does not reconnect (`session.noweb.core.ts`, `connection.update`
        close with `loggedOut`): the same status as a ban, which WAHA cannot tell apart either."""
        session = self.sessions.get(name)
        if session is None:
            raise NotFound(f"We didn't find a session with name '{name}'")
        self._stop_qr(session)
        session.paired = False
        if session.status != "FAILED":
            self._change_status(session, "FAILED")
        return session

    def delete_session(self, name: str) -> None:
        """WAHA's `DELETE /api/sessions/{name}`: stop (STOPPED webhook if it ran), log out, forget it."""
        session = self.sessions.pop(name, None)
        if session is None:
            return
        self._stop_qr(session)
        if session.status != "STOPPED":
            self._change_status(session, "STOPPED")
        for token in [t for t, bound in self.wuzapi_tokens.items() if bound == name]:
            del self.wuzapi_tokens[token]

    def reset_session(self, name: str) -> SimulatedSession:
        """Back to WORKING with no latency, pending failures or active time-lock (stored messages, the
        session's webhooks, its quirk modes and its capping stay)."""
        session = self.session(name)
        self._stop_qr(session)
        session.paired, session.banned = True, False
        session.latency_ms = session.fail_next = session.timelock_next = session.timelock_ack_next = 0
        session.empty_body_next = session.error_after_send_next = session.wrapped_500_next = 0
        session.fail_status = 500
        if session.status != "WORKING":
            self._change_status(session, "WORKING")
        if session.reachout_timelock is not None and session.reachout_timelock["isActive"]:
            # WAHA re-issues WORKING when a time-lock ends (ReachoutTimelockTracker.expire).
            session.reachout_timelock = {**session.reachout_timelock, "isActive": False}
            self._change_status(session, "WORKING", {"reachoutTimelock": dict(session.reachout_timelock)})
        return session

    def set_session_config(self, name: str, config: dict[str, Any] | None) -> SimulatedSession:
        """Replace the session's WAHA `config` (as `PUT /api/sessions/{name}` does); its `webhooks`
        decide where the session's events go. Without `webhooks` the global webhook applies again."""
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise BadRequest("config must be an object")
        raw = config.get("webhooks")
        targets: tuple[WebhookTarget, ...] | None = None
        if raw is not None:
            if not isinstance(raw, list):
                raise BadRequest("config.webhooks must be a list")
            s = self.settings
            try:
                targets = tuple(
                    WebhookTarget.from_waha(
                        entry if isinstance(entry, dict) else {},
                        attempts=s.webhook_attempts,
                        delay_s=s.webhook_retry_base_ms / 1000,
                    )
                    for entry in raw
                )
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        session = self.session(name)
        session.config = config
        session.webhooks = targets
        return session

    def webhook_targets(self, session: SimulatedSession) -> tuple[WebhookTarget, ...]:
        """Where `session`'s events go now: its own webhooks, else the global one, else nowhere.

        Real WAHA sends the global webhook (WHATSAPP_HOOK_URL) for every session besides the session's
        own (devlikeapro/waha `src/core/manager.core.ts` `getWebhooks`); here it is only the default, so a
        session pointed at the gateway is not also posted, unverifiable, to the global URL."""
        if session.webhooks is not None:
            return session.webhooks
        default = self.webhooks.default_target
        return () if default is None else (default,)

    def reset(self) -> None:
        """Forget every session, token binding, message and ledger entry."""
        for session in self.sessions.values():
            self._stop_qr(session)
        self.sessions.clear()
        self.wuzapi_tokens.clear()
        self.ledger.clear()
        self._stored = 0

    def update_settings(self, **changes: Any) -> SimulatorSettings:
        """Change ack delays, probabilities or the webhook target of a running simulator."""
        unknown = set(changes) - _RUNTIME_SETTINGS
        if unknown:
            raise BadRequest(f"not changeable at runtime: {', '.join(sorted(unknown))}")
        try:
            self.settings = replace(self.settings, **changes)
        except (TypeError, ValueError) as exc:
            raise BadRequest(str(exc)) from None
        self.webhooks.url = self.settings.webhook_url
        self.webhooks.secret = self.settings.webhook_secret
        return self.settings

    # --- sending ---------------------------------------------------------------------------------------

    def _change_status(
        self, session: SimulatedSession, status: str, data: dict[str, Any] | None = None
    ) -> None:
        session.set_status(status)
        # WASessionStatusBody: `data` is null for most statuses; WORKING re-issued with
        # {reachoutTimelock} when a time-lock starts or ends.
        payload = {"name": session.name, "status": status, "statuses": list(session.statuses), "data": data}
        self._emit(0, session, lambda: self._envelope("session.status", session, payload))

    def _emit(self, delay_s: float, session: SimulatedSession, build: Callable[[], dict[str, Any]]) -> None:
        self.webhooks.schedule(delay_s, build, lambda: self.webhook_targets(session))

    def _start_timelock(self, session: SimulatedSession) -> None:
        """A 463: GOWS answers the send with 500 and WAHA re-issues `session.status` WORKING carrying
        `data.reachoutTimelock` (once per time-lock: consecutive equal WORKING updates are dropped)."""
        if session.reachout_timelock is not None and session.reachout_timelock["isActive"]:
            return
        session.reachout_timelock = {
            "enforcementType": "DEFAULT",
            "isActive": True,
            "timeEnforcementEnds": int(time.time()) + _TIMELOCK_S,  # unix seconds, as WAHA
        }
        self._change_status(session, "WORKING", {"reachoutTimelock": dict(session.reachout_timelock)})

    def _new_message_id(self) -> str:
        return f"3EB0{self._id_prefix}{next(self._ids):010X}"

    async def submit(
        self,
        session: SimulatedSession,
        chat: str,
        kind: str,
        client_id: str | None,
        content: str | None,
        *,
        api: str = "waha",
        details: dict[str, str] | None = None,
    ) -> SendOutcome:
        """One send through any API: refused before it left, or accepted (stored, recorded in the
        ledger, acks scheduled) and then answered as the session's quirks say."""
        if session.latency_ms:
            await asyncio.sleep(session.latency_ms / 1000)
        refused = self._gate(session)
        if refused is not None:
            return refused
        raw_id, message = self._accept(session, chat, kind, client_id, content, api=api, details=details)
        answer = Answer.NORMAL
        if session.error_after_send_next:
            session.error_after_send_next -= 1
            answer = Answer.ERROR_AFTER_SEND
        elif session.empty_body_next:
            session.empty_body_next -= 1
            answer = Answer.EMPTY_BODY
        return SendOutcome(message=message, raw_id=raw_id, answer=answer)

    def _gate(self, session: SimulatedSession) -> SendOutcome | None:
        """What refuses a send before it leaves (nothing is recorded)."""
        if session.status != "WORKING":
            return SendOutcome(Refusal.NOT_WORKING, 422)
        if session.fail_next:
            session.fail_next -= 1
            return SendOutcome(Refusal.TRANSIENT, session.fail_status)
        if session.timelock_next:
            session.timelock_next -= 1
            self._start_timelock(session)
            return SendOutcome(Refusal.TIMELOCK)
        if session.wrapped_500_next:
            # TurboZap answers a 463 with its generic 500; the time-lock itself is just as real.
            session.wrapped_500_next -= 1
            self._start_timelock(session)
            return SendOutcome(Refusal.WRAPPED_500)
        return None

    def _accept(
        self,
        session: SimulatedSession,
        chat: str,
        kind: str,
        client_id: str | None,
        body: str | None,
        *,
        api: str,
        details: dict[str, str] | None,
    ) -> tuple[str, dict[str, Any]]:
        # `ignore_client_id`: WEBJS and older releases drop the caller's id and pick their own.
        raw_id = (None if session.ignore_client_id else client_id) or self._new_message_id()
        # `lid_filing`: GOWS/NOWEB may file the chat under the contact's `@lid`, and say so in the id.
        filed = _lid_of(chat) if session.lid_filing else chat
        message_id = f"true_{filed}_{raw_id}"
        now = time.time()
        # A time-lock met after acceptance: the answer says PENDING, an ERROR ack follows (NOWEB).
        timelocked = kind != "reaction" and session.timelock_ack_next > 0
        message = {
            "id": message_id,
            "timestamp": int(now),
            "from": session.me,
            "fromMe": True,
            "to": filed,
            "body": body or "",
            "hasMedia": kind not in ("text", "reaction"),
            "ack": 0 if timelocked else 1,
            "ackName": "PENDING" if timelocked else "SERVER",
        }
        self._store(session, raw_id, message_id, message)
        # Recorded even when it fails later: the API accepted it, as a real provider's would. The
        # caller's id is kept even where the session ignored it: duplicates are counted by intent.
        self.ledger.record(
            session=session.name,
            chat_id=chat,
            kind=kind,
            client_id=client_id,
            provider_id=message_id,
            api=api,
            details=details,
        )
        if timelocked:
            session.timelock_ack_next -= 1
            error_ack = self._timelock_ack_builder(session, filed, message_id)
            self._emit(max(self.settings.server_ack_ms, 0) / 1000, session, error_ack)
        elif kind != "reaction":
            self._schedule_follow_ups(session, filed, message_id)
        return raw_id, message

    def _store(
        self, session: SimulatedSession, raw_id: str, message_id: str, message: dict[str, Any]
    ) -> None:
        """Keep a sent message for lookups, by its serialized id and by its bare id (GOWS looks a
        message up by the bare id alone)."""
        if message_id not in session.messages:
            self._stored += 1
        session.messages[message_id] = message
        session.raw_ids[raw_id] = message_id
        if self._stored > self.settings.max_messages and session.messages:
            oldest = session.messages.pop(next(iter(session.messages)))
            session.raw_ids.pop(_raw_id(oldest["id"]), None)
            self._stored -= 1

    def _schedule_follow_ups(self, session: SimulatedSession, chat: str, message_id: str) -> None:
        if not self.webhook_targets(session):  # nobody listens: no timers at all (benchmarks)
            return
        s = self.settings
        acks = [(s.server_ack_ms, 1, "SERVER"), (s.device_ack_ms, 2, "DEVICE")]
        if s.read_probability >= 1.0 or self._random.random() < s.read_probability:
            acks.append((s.read_ack_ms, 3, "READ"))
        for delay_ms, ack, name in acks:
            if delay_ms >= 0:
                build = self._ack_builder(session, chat, message_id, ack, name)
                self._emit(delay_ms / 1000, session, build)
        if s.reply_probability > 0 and self._random.random() < s.reply_probability:
            self._emit(s.reply_delay_ms / 1000, session, self._reply_builder(session, chat))

    def _ack_builder(
        self, session: SimulatedSession, chat: str, message_id: str, ack: int, name: str
    ) -> Callable[[], dict[str, Any]]:
        def build() -> dict[str, Any]:
            stored = session.messages.get(message_id)
            if stored is not None and stored["ack"] < ack:
                stored["ack"], stored["ackName"] = ack, name
            group = chat.endswith("@g.us")
            # WAMessageAckBody. Receipts in a group chat go out as `message.ack.group`, naming the
            # member who read (GOWS partitions receipts by `isJidGroup(Chat)`).
            payload = {
                "id": message_id,
                "from": chat,
                "to": session.me,
                "participant": _GROUP_PARTICIPANT if group else None,
                "fromMe": True,
                "ack": ack,
                "ackName": name,
            }
            return self._envelope("message.ack.group" if group else "message.ack", session, payload)

        return build

    def _timelock_ack_builder(
        self, session: SimulatedSession, chat: str, message_id: str
    ) -> Callable[[], dict[str, Any]]:
        def build() -> dict[str, Any]:
            self._start_timelock(session)  # the session.status WORKING + reachoutTimelock follows
            stored = session.messages.get(message_id)
            if stored is not None:
                stored["ack"], stored["ackName"] = -1, "ERROR"
            timelock = session.reachout_timelock or {}
            ends = timelock.get("timeEnforcementEnds")
            until = (
                None if ends is None else datetime.fromtimestamp(ends, UTC).isoformat().replace("+00:00", "Z")
            )
            error = {"code": "463", "blocked": True, "reason": "account_restricted", "until": until}
            if timelock.get("enforcementType") is not None:
                error["enforcementType"] = timelock["enforcementType"]
            # NOWEB's direct ack of Baileys' ERROR update, a group's too (`message.ack`, never `.group`):
            # no `to` or `participant` (the bad ack's key has neither), `error` from buildAckError
            # (devlikeapro/waha@cb6e7ad5e2459689aaaf10ad3d3e4df209c6988d session.noweb.core.ts
            # convertMessageUpdateToMessageAck, restriction.ts; webhooks.dto.ts WAMessageAckError).
            payload = {
                "id": message_id,
                "from": chat,
                "fromMe": True,
                "ack": -1,
                "ackName": "ERROR",
                "error": error,
            }
            return self._envelope("message.ack", session, payload)

        return build

    def _reply_builder(self, session: SimulatedSession, chat: str) -> Callable[[], dict[str, Any]]:
        def build() -> dict[str, Any]:
            payload = {
                "id": f"false_{chat}_{self._new_message_id()}",
                "timestamp": int(time.time()),
                "from": chat,
                "fromMe": False,
                "to": session.me,
                "body": self._random.choice(_REPLIES),
                "hasMedia": False,
                "ack": 1,
                "ackName": "SERVER",
            }
            return self._envelope("message", session, payload)

        return build

    def _envelope(self, event: str, session: SimulatedSession, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": _event_id(),
            "timestamp": int(time.time() * 1000),
            "event": event,
            "session": session.name,
            "metadata": _metadata(session.config),
            "me": session.me_json() if session.paired else None,
            "payload": payload,
            "engine": _ENGINE,
            "environment": {"version": "simulator", "engine": _ENGINE, "tier": "CORE", "browser": None},
        }

    # --- HTTP ------------------------------------------------------------------------------------------

    def _routes(self) -> list[web.RouteDef]:
        send = self._send_handler
        return [
            web.get("/ping", self._ping),
            *(web.post(f"/api/{endpoint}", send(endpoint)) for endpoint in _KIND_BY_ENDPOINT),
            web.put("/api/reaction", self._reaction),
            web.get("/api/sessions", self._list_sessions),
            web.post("/api/sessions", self._create_session),
            web.get("/api/sessions/{session}", self._get_session),
            web.get("/api/sessions/{session}/capping", self._get_capping),
            web.put("/api/sessions/{session}", self._update_session),
            web.post("/api/sessions/{session}/start", self._start_session),
            web.post("/api/sessions/{session}/stop", self._stop_session),
            web.post("/api/sessions/{session}/restart", self._restart_session),
            web.post("/api/sessions/{session}/logout", self._logout_session),
            web.delete("/api/sessions/{session}", self._delete_session),
            web.get("/api/{session}/auth/qr", self._get_qr),
            web.post("/api/{session}/auth/request-code", self._request_code),
            web.get("/api/{session}/chats/{chat_id}/messages/{message_id}", self._get_message),
            # Control routes: tests, launchers and benchmarks only.
            web.get("/_sim/health", self._sim_health),
            web.get("/_sim/sessions", self._sim_sessions),
            web.post("/_sim/sessions", self._sim_create_session),
            web.put("/_sim/sessions/{session}", self._sim_configure_session),
            web.post("/_sim/sessions/{session}/ban", self._sim_ban),
            web.post("/_sim/sessions/{session}/scan", self._sim_scan),
            web.post("/_sim/sessions/{session}/logout", self._sim_logout),
            web.post("/_sim/sessions/{session}/reset", self._sim_reset_session),
            web.post("/_sim/reset", self._sim_reset),
            web.get("/_sim/settings", self._sim_get_settings),
            web.put("/_sim/settings", self._sim_put_settings),
            web.get("/_sim/ledger", self._sim_ledger),
            web.delete("/_sim/ledger", self._sim_clear_ledger),
            web.get("/_sim/webhooks", self._sim_webhooks),
            # wuzapi mode: the same sessions behind wuzapi's API (token auth, see wuzapi.py).
            *WuzapiApi(self).routes(),
        ]

    @web.middleware
    async def _trace_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Keep the caller's trace context while the request is handled: the webhooks it schedules carry
        it (webhooks.received_trace)."""
        carried = tuple((name, request.headers[name]) for name in TRACE_HEADERS if name in request.headers)
        if not carried:
            return await handler(request)
        token = received_trace.set(carried)
        try:
            return await handler(request)
        finally:
            received_trace.reset(token)

    @web.middleware
    async def _errors_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # /ping is open; wuzapi's routes check their own `token`.
        open_path = request.path == "/ping" or request.path.startswith(WUZAPI_PREFIXES)
        if not open_path and not self._authorized(request):
            return web.json_response({"message": "Unauthorized", "statusCode": 401}, status=401)
        try:
            return await handler(request)
        except BadRequest as exc:
            return _waha_error(400, exc.messages, "Bad Request")
        except NotFound as exc:
            return _waha_error(404, str(exc), "Not Found")
        except Conflict as exc:
            return _waha_error(409, str(exc), "Conflict")

    def _authorized(self, request: web.Request) -> bool:
        expected = self.settings.api_key
        if not expected:
            return True
        return hmac.compare_digest(request.headers.get("X-Api-Key", "").encode(), expected.encode())

    @staticmethod
    async def _json_object(request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise BadRequest("body must be JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        return body

    def _session_of(self, body: dict[str, Any]) -> SimulatedSession:
        name = body.get("session")
        if not isinstance(name, str) or not _SESSION_NAME.match(name):
            raise BadRequest("session must be a session name")
        return self.session(name)

    @staticmethod
    def _chat_of(body: dict[str, Any]) -> str:
        chat = body.get("chatId")
        if not isinstance(chat, str) or not _CHAT_ID.match(chat):
            raise BadRequest("chatId must be <digits>@c.us or a group id")
        return chat

    def _send_handler(self, endpoint: str) -> Handler:
        kind = _KIND_BY_ENDPOINT[endpoint]

        async def handle(request: web.Request) -> web.Response:
            body = await self._json_object(request)
            chat = self._chat_of(body)
            client_id = None
            if kind == "text":
                text = body.get("text")
                if not isinstance(text, str) or not text:
                    raise BadRequest("text must be a non-empty string")
                client_id = body.get("id")
                if client_id is not None and not (isinstance(client_id, str) and _CLIENT_ID.match(client_id)):
                    raise BadRequest("id must be 8-64 letters or digits")
                content: str | None = text
            else:
                file = body.get("file")
                if not isinstance(file, dict) or not isinstance(file.get("mimetype"), str):
                    raise BadRequest("file.mimetype must be a string")
                if not (isinstance(file.get("url"), str) or isinstance(file.get("data"), str)):
                    raise BadRequest("file must have url or data")
                caption = body.get("caption")
                content = caption if isinstance(caption, str) else None
            session = self._session_of(body)
            details = {} if kind == "text" else _file_details(body["file"])
            outcome = await self.submit(session, chat, kind, client_id, content, details=details)
            return self._waha_answer(session, kind, outcome, status=201)

        return handle

    async def _reaction(self, request: web.Request) -> web.Response:
        body = await self._json_object(request)
        target = body.get("messageId")
        reaction = body.get("reaction")
        if not isinstance(target, str) or not target:
            raise BadRequest("messageId must be a string")
        if not isinstance(reaction, str):
            raise BadRequest("reaction must be a string")
        session = self._session_of(body)
        match = _SERIALIZED.match(target)
        chat = match.group(2) if match else ""
        details = {"target": target, "reaction": reaction}
        outcome = await self.submit(session, chat, "reaction", None, reaction, details=details)
        return self._waha_answer(session, "reaction", outcome, status=200)

    @staticmethod
    def _waha_answer(
        session: SimulatedSession, kind: str, outcome: SendOutcome, *, status: int
    ) -> web.Response:
        """A send's outcome in WAHA's shapes (a reaction is answered `{id}`, other sends the message)."""
        if outcome.refusal is Refusal.NOT_WORKING:
            return web.json_response(
                {
                    "error": "Session status is not as expected. Try again later or restart the session",
                    "session": session.name,
                    "status": session.status,
                    "expected": ["WORKING"],
                },
                status=422,
            )
        if outcome.refusal is Refusal.TRANSIENT:
            if outcome.status == 429:
                return web.json_response(
                    {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"},
                    status=429,
                    headers={"Retry-After": "1"},
                )
            if outcome.status == 503:
                return _waha_error(503, "Service Unavailable", "Service Unavailable")
            return _exception_500("simulated transient failure")
        if outcome.refusal is Refusal.TIMELOCK:
            return _exception_500("2 UNKNOWN: server returned error 463", "server returned error 463")
        if outcome.refusal is Refusal.WRAPPED_500:
            return web.json_response(turbozap_500_body(kind), status=500)
        assert outcome.message is not None  # accepted
        if outcome.answer is Answer.ERROR_AFTER_SEND:
            return _exception_500("simulated failure after the message left")
        if outcome.answer is Answer.EMPTY_BODY:
            return web.Response(status=status)  # WEBJS 2025.6.5: 201 and nothing else
        if kind == "reaction":
            return web.json_response({"id": outcome.message["id"]}, status=status)
        return web.json_response(outcome.message, status=status)

    async def _get_message(self, request: web.Request) -> web.Response:
        """`GET /api/{session}/chats/{chatId}/messages/{messageId}`, `chatId` "all" included.

        WAHA's controller answers 404 "Message not found" when the engine finds nothing (devlikeapro/waha
        `src/api/chats.controller.ts` `getChatMessage`). With the chat "all" GOWS looks the bare id up
        across every chat (`getChatMessage` soft-parses the id and searches by `key.id` alone); with a
        chat, the message must be filed under that chat (NOWEB `store.loadMessage(jid, id)`), so a message
        filed under an `@lid` is not found under `<digits>@c.us`. NOWEB without its store answers 400."""
        name = request.match_info["session"]
        session = self.sessions.get(name)
        if session is None:
            return _waha_error(404, f"We didn't find a session with name '{name}'", "Not Found")
        if session.lookup_store_missing:
            return _waha_error(400, NOWEB_STORE_MISSING, "Bad Request")
        chat = request.match_info["chat_id"]
        message = session.find_message(request.match_info["message_id"])
        if message is None or (chat != "all" and message["to"] != chat):
            return _waha_error(404, "Message not found", "Not Found")
        return web.json_response(message)

    async def _get_capping(self, request: web.Request) -> web.Response:
        """WAHA GOWS `GET /api/sessions/{session}/capping`: the session's `MessageCappingData`
        {cappingStatus, totalQuota (-1: no cap), usedQuota, cycleStart, cycleEnd, mvStatus, oteStatus}
        (devlikeapro/waha 2026.8.1, release notes #2186; `src/structures/sessions.dto.ts`)."""
        name = request.match_info["session"]
        session = self.sessions.get(name)
        if session is None:
            return _waha_error(404, f"We didn't find a session with name '{name}'", "Not Found")
        return web.json_response(self.capping_of(session))

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({"message": "pong"})

    async def _list_sessions(self, request: web.Request) -> web.Response:
        return web.json_response([session.waha_json() for session in self.sessions.values()])

    async def _create_session(self, request: web.Request) -> web.Response:
        """WAHA's `POST /api/sessions` `{name, config?, start?}` (sessions.controller.ts `create`): a new
        session, STOPPED with no account linked (started at once with `start: true`, then showing QR
        codes); an existing name is 422, as WAHA (a config goes to an existing session with PUT)."""
        body = await self._json_object(request)
        name = body.get("name")
        if not isinstance(name, str) or not _SESSION_NAME.match(name):
            raise BadRequest("name must be a session name")
        if name in self.sessions:
            return _waha_error(
                422, f"Session '{name}' already exists. Use PUT to update it.", "Unprocessable Entity"
            )
        session = self._new_session(name)
        if "config" in body:
            try:
                self.set_session_config(name, body["config"])
            except BadRequest:
                del self.sessions[name]  # a refused config creates nothing
                raise
        if body.get("start") is True:
            self.start_pairing(name)
        return web.json_response(session.waha_json(), status=201)

    async def _update_session(self, request: web.Request) -> web.Response:
        """WAHA's `PUT /api/sessions/{session}` `{config}`: replaces the session's config.

        Unlike WAHA (404 for an unknown session) the session is created on first use, like every other
        route here, and it is not restarted (WAHA stops and starts a running session)."""
        body = await self._json_object(request)
        session = self.set_session_config(request.match_info["session"], body.get("config"))
        return web.json_response(session.waha_json())

    async def _get_session(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["session"])
        if session is None:
            return _waha_error(404, "Session not found", "Not Found")
        return web.json_response(session.waha_json())

    async def _start_session(self, request: web.Request) -> web.Response:
        """Start a stopped session: WORKING when an account is linked, else QR codes until a scan (a
        session unlinked by the phone, FAILED, starts over the same way; a banned one stays FAILED)."""
        session = self.session(request.match_info["session"])
        if session.status in ("STOPPED", "FAILED") and not session.banned:
            if session.paired:
                self._change_status(session, "WORKING")
            else:
                self.start_pairing(session.name)
        return web.json_response(session.waha_json(), status=201)

    async def _stop_session(self, request: web.Request) -> web.Response:
        session = self.session(request.match_info["session"])
        if session.status in ("WORKING", "STARTING", "SCAN_QR_CODE"):
            self._stop_qr(session)
            self._change_status(session, "STOPPED")
        return web.json_response(session.waha_json(), status=201)

    async def _restart_session(self, request: web.Request) -> web.Response:
        """WAHA's `POST /api/sessions/{session}/restart`: stop and start again (404 for an unknown one)."""
        session = self._known_session(request)
        if not session.banned:
            if not session.paired:
                self.start_pairing(session.name)
            elif session.status != "WORKING":
                self._change_status(session, "WORKING")
        return web.json_response(session.waha_json(), status=201)

    async def _logout_session(self, request: web.Request) -> web.Response:
        """WAHA's `POST /api/sessions/{session}/logout`: stop, log the account out, and start a session
        that was running again, which then shows QR codes (sessions.controller.ts `logout`)."""
        session = self._known_session(request)
        running = session.status != "STOPPED"
        self._stop_qr(session)
        session.paired = False
        if running:
            self._change_status(session, "STOPPED")
            if not session.banned:
                self.start_pairing(session.name)
        return web.json_response(session.waha_json(), status=201)

    async def _delete_session(self, request: web.Request) -> web.Response:
        """WAHA's `DELETE /api/sessions/{session}` (idempotent: an unknown session is fine)."""
        self.delete_session(request.match_info["session"])
        return web.Response(status=200)

    def _known_session(self, request: web.Request) -> SimulatedSession:
        session = self.sessions.get(request.match_info["session"])
        if session is None:
            raise NotFound("Session not found")
        return session

    def _showing_qr(self, request: web.Request) -> SimulatedSession | web.Response:
        """The session of an auth route, or WAHA's answer when it has none to show: 404 for an unknown
        session (manager.core.ts `getSession`), 422 `{error, session, status, expected}` for one that is
        not SCAN_QR_CODE (SessionPipe `QRCodeSessionPipe`, manager.abc.ts `waitUntilStatus`)."""
        name = request.match_info["session"]
        session = self.sessions.get(name)
        if session is None:
            raise NotFound(
                f"We didn't find a session with name '{name}'.\n"
                f"Please start it first by using POST /api/sessions/{name}/start request"
            )
        if session.status != "SCAN_QR_CODE" or session.qr is None:
            return web.json_response(
                {
                    "error": "Session status is not as expected. Try again later or restart the session",
                    "session": name,
                    "status": session.status,
                    "expected": ["SCAN_QR_CODE"],
                },
                status=422,
            )
        return session

    async def _get_qr(self, request: web.Request) -> web.StreamResponse:
        """WAHA's `GET /api/{session}/auth/qr?format=image|raw` (auth.controller.ts `getQR`): `{value}`
        for raw; the PNG itself for image, or `{mimetype, data}` when asked `Accept: application/json`
        (BufferResponseInterceptor)."""
        session = self._showing_qr(request)
        if isinstance(session, web.Response):
            return session
        assert session.qr is not None  # _showing_qr checked it
        form = request.query.get("format", "image")
        if form == "raw":
            return web.json_response({"value": session.qr})
        if form != "image":
            raise BadRequest("format must be one of the following values: image, raw")
        png = qr_png(session.qr)
        if request.headers.get("Accept") == "application/json":
            return web.json_response({"mimetype": "image/png", "data": base64.b64encode(png).decode()})
        return web.Response(body=png, content_type="image/png")

    async def _request_code(self, request: web.Request) -> web.Response:
        """WAHA's `POST /api/{session}/auth/request-code {phoneNumber}` → `{code: "ABCD-EFGH"}`, only while
        SCAN_QR_CODE (NOWEB `requestCode`: 422 otherwise)."""
        body = await self._json_object(request)
        phone = body.get("phoneNumber")
        if not isinstance(phone, str) or not _PHONE.match(phone):
            raise BadRequest("phoneNumber must be the phone number in international format, digits only")
        name = request.match_info["session"]
        session = self.sessions.get(name)
        if session is not None and session.status != "SCAN_QR_CODE":
            message = f"Can request code only in SCAN_QR_CODE status. The current status is {session.status}"
            return _waha_error(422, message, "Unprocessable Entity")
        showing = self._showing_qr(request)
        if isinstance(showing, web.Response):
            return showing
        showing.pairing_code = new_pairing_code()
        return web.json_response({"code": showing.pairing_code}, status=201)

    # --- /_sim ----------------------------------------------------------------------------------------

    async def _sim_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "sessions": len(self.sessions), "sends": len(self.ledger)})

    async def _sim_sessions(self, request: web.Request) -> web.Response:
        return web.json_response([session.control_json() for session in self.sessions.values()])

    async def _sim_create_session(self, request: web.Request) -> web.Response:
        body = await self._json_object(request)
        name = body.pop("name", None)
        if not isinstance(name, str) or not _SESSION_NAME.match(name):
            raise BadRequest("name must be a session name")
        return web.json_response(self.configure_session(name, **_behaviour(body)).control_json(), status=201)

    async def _sim_configure_session(self, request: web.Request) -> web.Response:
        body = await self._json_object(request)
        session = self.configure_session(request.match_info["session"], **_behaviour(body))
        return web.json_response(session.control_json())

    async def _sim_ban(self, request: web.Request) -> web.Response:
        return web.json_response(self.ban(request.match_info["session"]).control_json())

    async def _sim_scan(self, request: web.Request) -> web.Response:
        """The phone scans the QR code showing now (`{code?}`: refuse a stale one); see `scan`."""
        body = await self._json_object(request)
        code = body.get("code")
        if code is not None and not isinstance(code, str):
            raise BadRequest("code must be a string")
        return web.json_response(self.scan(request.match_info["session"], code).control_json())

    async def _sim_logout(self, request: web.Request) -> web.Response:
        """The phone removes the linked device; see `unlink`."""
        return web.json_response(self.unlink(request.match_info["session"]).control_json())

    async def _sim_reset_session(self, request: web.Request) -> web.Response:
        return web.json_response(self.reset_session(request.match_info["session"]).control_json())

    async def _sim_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"status": "reset"})

    async def _sim_get_settings(self, request: web.Request) -> web.Response:
        return web.json_response(_public_settings(self.settings))

    async def _sim_put_settings(self, request: web.Request) -> web.Response:
        body = await self._json_object(request)
        return web.json_response(_public_settings(self.update_settings(**body)))

    async def _sim_ledger(self, request: web.Request) -> web.Response:
        include = request.query.get("entries", "true").lower() not in ("0", "false", "no")
        limit_text = request.query.get("limit")
        try:
            limit = int(limit_text) if limit_text is not None else None
        except ValueError:
            raise BadRequest("limit must be an integer") from None
        return web.json_response(self.ledger.summary(include_entries=include, limit=limit))

    async def _sim_clear_ledger(self, request: web.Request) -> web.Response:
        cleared = len(self.ledger)
        self.ledger.clear()
        return web.json_response({"cleared": cleared})

    async def _sim_webhooks(self, request: web.Request) -> web.Response:
        return web.json_response(self.webhooks.stats())


_RUNTIME_SETTINGS = {
    "qr_rotate_s",
    "webhook_url",
    "webhook_secret",
    "server_ack_ms",
    "device_ack_ms",
    "read_ack_ms",
    "read_probability",
    "reply_probability",
    "reply_delay_ms",
}
_BEHAVIOUR_TYPES: dict[str, type] = {
    "latency_ms": int,
    "fail_next": int,
    "fail_status": int,
    "timelock_next": int,
    "timelock_ack_next": int,
    "banned": bool,
    "error_before_send_next": int,
    "ignore_client_id": bool,
    "lid_filing": bool,
    "lookup_store_missing": bool,
    "empty_body_next": int,
    "error_after_send_next": int,
    "wrapped_500_next": int,
    "capping_status": str,
    "quota_used": int,
    "quota_total": int,
    "wuzapi_token": str,
}


def _behaviour(body: dict[str, Any]) -> dict[str, Any]:
    unknown = set(body) - set(_BEHAVIOUR_TYPES)
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}")
    for key, value in body.items():
        expected = _BEHAVIOUR_TYPES[key]
        # bool is an int in Python; keep the two apart so {"fail_next": true} is refused.
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise BadRequest(f"{key} must be {expected.__name__}")
    return body


def _file_details(file: dict[str, Any]) -> dict[str, str]:
    """What the ledger keeps of a WAHA `file`: its type and name (never the data)."""
    details = {"mimetype": str(file["mimetype"])}
    if isinstance(file.get("filename"), str):
        details["filename"] = file["filename"]
    return details


def _public_config(config: dict[str, Any]) -> dict[str, Any]:
    """The session config as WAHA shows it, without the hmac keys (secrets stay out of answers)."""
    webhooks = config.get("webhooks")
    if not isinstance(webhooks, list):
        return dict(config)
    shown = []
    for webhook in webhooks:
        if isinstance(webhook, dict) and isinstance(webhook.get("hmac"), dict) and webhook["hmac"].get("key"):
            webhook = {**webhook, "hmac": {**webhook["hmac"], "key": "***"}}
        shown.append(webhook)
    return {**config, "webhooks": shown}


def _metadata(config: dict[str, Any]) -> dict[str, Any]:
    """WAHA puts the session's `config.metadata` in every webhook."""
    metadata = config.get("metadata")
    return dict(metadata) if isinstance(metadata, dict) else {}


def _public_settings(settings: SimulatorSettings) -> dict[str, Any]:
    values = asdict(settings)
    for secret in ("api_key", "webhook_secret"):
        values[secret] = "***" if values[secret] else ""
    return values


@asynccontextmanager
async def run_simulator(
    settings: SimulatorSettings | None = None, **overrides: Any
) -> AsyncIterator[ProviderSimulator]:
    """Run a simulator in this event loop for the duration of the block (port 0 unless told otherwise).

    `async with run_simulator(api_key="k", webhook_url=url) as sim:` gives `sim.base_url`, `sim.ledger`,
    `sim.configure_session(...)`, `sim.ban(...)`.
    """
    base = settings or SimulatorSettings()
    known = {spec.name for spec in fields(SimulatorSettings)}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown simulator settings: {', '.join(sorted(unknown))}")
    simulator = ProviderSimulator(replace(base, **overrides))
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()
