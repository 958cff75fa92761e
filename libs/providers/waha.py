"""WAHA (WhatsApp HTTP API, devlikeapro) adapter.

Auth header `X-Api-Key`; every send is `POST /api/send*` with the session in the body and a chat id
`<digits>@c.us` (or a group JID). The answer's `id` is the serialized message id
`true_<chatId>_<messageId>`, the same id `message.ack` webhooks carry. Whether WAHA keeps the id we
choose and how a lost send can be looked up depend on its engine and version (`capabilities_of`):
NOWEB/GOWS from 2026.4.3 keep `sendText`'s `id` and find it across every chat with
`GET /api/{session}/chats/all/messages/{id}`; older releases and WEBJS only offer
`GET /api/{session}/chats/{chatId}/messages/{messageId}`, where a miss proves nothing (our id was ignored,
or the chat is filed under the contact's `@lid`).

Webhooks are set per session: `PUT /api/sessions/{session}` replaces the session's `config`, whose
`webhooks: [{url, events, hmac: {key}, retries, customHeaders}]` say where its events go, each signed
`X-Webhook-Hmac` with its own key (devlikeapro/waha `src/api/sessions.controller.ts` `update`,
`src/structures/webhooks.config.dto.ts`).

Errors: a session that is not WORKING answers 422 `{error, session, status, expected}`; WhatsApp errors
surface as 500 `{exception: {message: "2 UNKNOWN: server returned error 463", ...}}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from libs.providers.base import HttpFailure, LookupAnswer, SpecificRule, dig, non_empty_str
from libs.providers.capabilities import (
    Capabilities,
    LookupMethod,
    LookupRequest,
    LookupResult,
    capabilities_of,
)
from libs.providers.health import WAHA_STATES
from libs.providers.port import (
    MediaKind,
    ProviderError,
    Restriction,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    SentMessage,
    check_recipient,
    is_group,
)
from libs.providers.sessions import (
    HttpSessions,
    PairingCode,
    QrCode,
    SessionStatus,
    SessionWebhook,
    check_ref,
    is_session_not_found,
    pairing_phone,
    png_of,
    says,
    session_call,
    unexpected,
    unless_unknown,
)
from libs.seedwork.shared_kernel import ConnectionState

VOICE_MIMETYPE = "audio/ogg; codecs=opus"
_MEDIA_ENDPOINT = {MediaKind.IMAGE: "sendImage", MediaKind.VIDEO: "sendVideo", MediaKind.DOCUMENT: "sendFile"}
# What WhatLead listens to: receipts (contacts and groups), incoming messages, session status (bans,
# QR, time-locks).
WEBHOOK_EVENTS = ("message", "message.ack", "message.ack.group", "session.status")
# Session states that recover by themselves shortly (WAHA restarts or reconnects the engine).
_STARTING_RETRY_AFTER = 5.0


def waha_rule(failure: HttpFailure) -> ProviderError | None:
    """WAHA's own error bodies (NestJS exceptions and the session-status guard)."""
    common = failure.origin(WahaProvider.name)
    if failure.status == 422:
        session_status = dig(failure.body, "status")
        if session_status == "STARTING":
            return ProviderError.transient(
                "session_starting", "WAHA session is starting", retry_after=_STARTING_RETRY_AFTER, **common
            )
        if session_status == "SCAN_QR_CODE":
            return ProviderError.restricted(
                Restriction.LOGGED_OUT, "session_needs_qr", "WAHA session needs a QR scan", **common
            )
        if session_status == "FAILED":
            # FAILED is also how WAHA reports a blocked account; Reputation reads the webhooks for more.
            return ProviderError.restricted(
                Restriction.DISCONNECTED, "session_failed", "WAHA session FAILED", **common
            )
        if session_status == "STOPPED":
            return ProviderError.restricted(
                Restriction.DISCONNECTED, "session_stopped", "WAHA session STOPPED", **common
            )
        if "status is not as expected" in failure.lower_text():
            return ProviderError.restricted(
                Restriction.DISCONNECTED, "session_not_working", "WAHA session is not WORKING", **common
            )
    if failure.status == 404 and "session" in failure.lower_text():
        return ProviderError.restricted(
            Restriction.DISCONNECTED, "session_not_found", "WAHA has no such session", **common
        )
    return None


def chat_id(recipient: str) -> str:
    """WAHA's chat id for a recipient: `<digits>@c.us`, or the group JID as is."""
    check_recipient(recipient)
    return recipient if is_group(recipient) else f"{recipient}@c.us"


def serialized_id(chat: str, message_id: str, *, from_me: bool = True) -> str:
    return f"{'true' if from_me else 'false'}_{chat}_{message_id}"


def message_id_of(data: Any, chat: str) -> str | None:
    """The serialized id in a WAHA message, whatever the engine (GOWS/NOWEB/WEBJS) shaped it like."""
    value = dig(data, "id")
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):  # WEBJS: {"fromMe":…, "remote":…, "id":…, "_serialized":…}
        return non_empty_str(value.get("_serialized"))
    key = dig(data, "key")  # NOWEB: a Baileys WAMessage
    raw_id = non_empty_str(dig(key, "id"))
    if raw_id is not None:
        return serialized_id(chat, raw_id, from_me=dig(key, "fromMe") is not False)
    return None


def _with_id(body: dict[str, Any], client_message_id: str | None) -> None:
    # Engines that do not keep it ignore the field (NestJS validation without a whitelist); the Executor
    # relies on it only where `capabilities_of` says it is kept.
    if client_message_id is not None:
        body["id"] = client_message_id


def _miss_proves_absence(capabilities: Capabilities, request: LookupRequest) -> bool:
    """A miss is proof only where WAHA keeps our id for this type and the lookup searched every chat."""
    return (
        capabilities.miss_proves_absence
        and capabilities.lookup is LookupMethod.BY_ID
        and capabilities.keeps_client_id(request.message_type)
    )


def _read_lookup(answer: LookupAnswer, chat: str, client_id: str, miss_is_proof: bool) -> LookupResult:
    """WAHA's answer to a message lookup, read so that only a real miss in a real search is ABSENT."""
    miss = LookupResult.absent() if miss_is_proof else LookupResult.inconclusive("not_found")
    if answer.ok:
        if answer.empty:
            return LookupResult.inconclusive("empty_body")
        if answer.body is None:
            # `null` is how some engines say "no such message"; anything else unreadable proves nothing.
            return miss if answer.text.strip() == "null" else LookupResult.inconclusive("unparseable_body")
        found = message_id_of(answer.body, chat)
        if found is None:
            return LookupResult.inconclusive("unknown_shape")
        if found != client_id and not found.endswith(f"_{client_id}"):
            return LookupResult.inconclusive("other_message")
        return LookupResult.found(found)
    text = answer.lower_text()
    if answer.status == 404:
        if "session" in text:
            return LookupResult.inconclusive("session_not_found")
        if "cannot get" in text:  # NestJS: no such route (a release older than the profile says)
            return LookupResult.inconclusive("lookup_unsupported")
        return miss
    if answer.status == 400 and "store" in text:
        return LookupResult.inconclusive("store_disabled")  # NOWEB without its store cannot search
    return LookupResult.inconclusive(f"http_{answer.status}")


class WahaProvider(HttpSessions):
    """WAHA adapter; also the adapter for the built-in provider simulator, which speaks WAHA."""

    name = "WAHA"
    specific_rule: ClassVar[SpecificRule | None] = waha_rule

    def auth_headers(self) -> dict[str, str]:
        return {"X-Api-Key": self._api_key}

    async def _send(self, endpoint: str, body: dict[str, Any], chat: str) -> SentMessage:
        return await self.post_for_message_id(
            self.url("api", endpoint), body, lambda data: message_id_of(data, chat)
        )

    async def send_text(self, request: SendTextRequest) -> SentMessage:
        chat = chat_id(request.recipient)
        body: dict[str, Any] = {"session": request.instance_ref, "chatId": chat, "text": request.text}
        _with_id(body, request.client_message_id)
        return await self._send("sendText", body, chat)

    async def send_media(self, request: SendMediaRequest) -> SentMessage:
        chat = chat_id(request.recipient)
        file: dict[str, Any] = {"mimetype": request.mimetype}
        if request.url is not None:
            file["url"] = request.url
        else:
            file["data"] = request.data_base64
        if request.filename:
            file["filename"] = request.filename
        body: dict[str, Any] = {"session": request.instance_ref, "chatId": chat, "file": file}
        if request.caption:
            body["caption"] = request.caption
        _with_id(body, request.client_message_id)
        return await self._send(_MEDIA_ENDPOINT[request.kind], body, chat)

    async def send_audio(self, request: SendAudioRequest) -> SentMessage:
        chat = chat_id(request.recipient)
        file: dict[str, Any] = {"mimetype": VOICE_MIMETYPE}
        if request.url is not None:
            file["url"] = request.url
        else:
            file["data"] = request.data_base64
        body: dict[str, Any] = {"session": request.instance_ref, "chatId": chat, "file": file}
        _with_id(body, request.client_message_id)
        return await self._send("sendVoice", body, chat)

    async def send_reaction(self, request: SendReactionRequest) -> SentMessage:
        chat = chat_id(request.recipient)
        body: dict[str, Any] = {
            "session": request.instance_ref,
            "messageId": request.message_id,
            "reaction": request.emoji,
        }
        _with_id(body, request.client_message_id)
        data = await self.request_json("PUT", self.url("api", "reaction"), body=body)
        # Some engines answer a reaction with an empty object: the reaction has no id worth tracking.
        return SentMessage(message_id_of(data, chat) or "")

    async def find_sent_message(self, request: LookupRequest) -> LookupResult:
        """Look our id up where this engine and version can: across every chat (NOWEB/GOWS from 2026.4.3,
        where a miss proves absence) or in the recipient's `@c.us` chat (a miss proves nothing)."""
        capabilities = capabilities_of(request.profile)
        if not capabilities.can_look_up:
            return LookupResult.inconclusive("lookup_unsupported")
        if request.client_message_id is None:
            return LookupResult.inconclusive("no_client_id")  # nothing of ours to look for
        chat = chat_id(request.recipient)
        client_id = request.client_message_id
        if capabilities.lookup is LookupMethod.BY_ID:
            # A bare id: WAHA's soft parse takes it, and no chat id narrows the search to @c.us.
            url = self.url("api", request.instance_ref, "chats", "all", "messages", client_id)
        else:
            url = self.url(
                "api", request.instance_ref, "chats", chat, "messages", serialized_id(chat, client_id)
            )
        answer = await self.lookup("GET", url, params={"downloadMedia": "false"})
        return _read_lookup(answer, chat, client_id, _miss_proves_absence(capabilities, request))

    async def set_session_webhook(
        self, instance_ref: str, *, url: str, hmac_key: str, events: Sequence[str] = WEBHOOK_EVENTS
    ) -> None:
        """Point the session's webhooks at `url`, signed with `hmac_key`, for `events`.

        WAHA's PUT replaces the whole session config, so the rest of it (metadata, proxy, engine
        settings) is read first and sent back unchanged; the session's webhooks become this one alone.
        WAHA restarts a running session to apply it.
        """
        if not url.startswith(("http://", "https://")):
            raise ProviderError.permanent("invalid_request", "webhook url must be http(s)")
        if not hmac_key:
            raise ProviderError.permanent("invalid_request", "a webhook hmac key is required")
        session_url = self.url("api", "sessions", instance_ref)
        try:
            current = await self.request_json("GET", session_url, idempotent=True)
        except ProviderError as exc:
            if exc.status != 404:
                raise
            # No config to keep; the PUT answers 404 too where the session really is missing (WAHA),
            # and creates it where sessions are created on first use (the simulator).
            current = None
        config = dig(current, "config")
        config = dict(config) if isinstance(config, dict) else {}
        config["webhooks"] = [{"url": url, "events": list(events), "hmac": {"key": hmac_key}}]
        # Setting the same config twice is harmless: a lost answer may be retried.
        await self.request_json("PUT", session_url, body={"config": config}, idempotent=True)

    # --- sessions (ProviderSessions) ------------------------------------------------------------------
    #
    # devlikeapro/waha at 2024.10.8 (55fc6a42): src/api/sessions.controller.ts (create, start, restart,
    # logout, delete), src/api/auth.controller.ts (qr, request-code), src/nestjs/pipes/SessionPipe.ts
    # (the QR waits for SCAN_QR_CODE, else 422 {error, session, status, expected}),
    # src/structures/webhooks.config.dto.ts (WebhookConfig: url, events, hmac.key, customHeaders).

    offers_pairing_code: ClassVar[bool] = True

    async def start_session(self, instance_ref: str) -> SessionStatus:
        """`POST /api/sessions {name, start: true}`; an existing session (422 "already exists") is
        started with `POST /api/sessions/{name}/start`, and restarted when it is STOPPED or FAILED."""
        check_ref(instance_ref)
        body = {"name": instance_ref, "start": True}
        info = await session_call(
            self, "POST", self.url("api", "sessions"), body=body, done_if=says("already exists", status=422)
        )
        if info is None:  # it exists: start it (idempotent in WAHA), restart it when stopped or failed
            info = await session_call(self, "POST", self.url("api", "sessions", instance_ref, "start"))
            if dig(info, "status") in ("STOPPED", "FAILED"):
                info = await session_call(self, "POST", self.url("api", "sessions", instance_ref, "restart"))
        return _waha_status(info)

    async def set_webhook(self, instance_ref: str, webhook: SessionWebhook) -> None:
        """`PUT /api/sessions/{name} {config}` keeping the rest of the config (WAHA restarts a running
        session to apply it); an unknown session is created with it, not started (`POST /api/sessions
        {name, config}`)."""
        check_ref(instance_ref)
        entry: dict[str, Any] = {
            "url": webhook.url,
            "events": list(webhook.events or WEBHOOK_EVENTS),
            "hmac": {"key": webhook.secret},
        }
        if webhook.headers:
            entry["customHeaders"] = [{"name": k, "value": v} for k, v in webhook.headers.items()]
        session_url = self.url("api", "sessions", instance_ref)
        try:
            current = await session_call(self, "GET", session_url)
        except ProviderError as error:
            if not is_session_not_found(error):
                raise
            body = {"name": instance_ref, "config": {"webhooks": [entry]}}
            await session_call(self, "POST", self.url("api", "sessions"), body=body)
            return
        config = dig(current, "config")
        config = dict(config) if isinstance(config, dict) else {}
        config["webhooks"] = [entry]
        await session_call(self, "PUT", session_url, body={"config": config})

    async def get_qr(self, instance_ref: str) -> QrCode | None:
        """`GET /api/{session}/auth/qr?format=raw` → `{value}`, then the image as JSON
        (`Accept: application/json` → `{mimetype, data}`). WAHA answers 422 unless the session is
        SCAN_QR_CODE: WORKING or STARTING mean no QR to show."""
        check_ref(instance_ref)
        qr_url = self.url("api", instance_ref, "auth", "qr")
        try:
            raw = await session_call(self, "GET", qr_url, params={"format": "raw"})
            image = await session_call(
                self, "GET", qr_url, params={"format": "image"}, headers={"Accept": "application/json"}
            )
        except ProviderError as error:
            if error.status == 422 and error.code in ("session_starting", "session_not_working"):
                return None  # WORKING (nothing to scan) or STARTING (the QR is on its way)
            raise
        value = dig(raw, "value")
        if not isinstance(value, str):
            raise unexpected(self.name, "no QR value in the answer")
        return QrCode(raw=value, png=png_of(dig(image, "data"), self.name))

    async def request_pairing_code(self, instance_ref: str, phone: str) -> PairingCode:
        """`POST /api/{session}/auth/request-code {phoneNumber}` → `{code: "ABCD-ABCD"}` (only while
        SCAN_QR_CODE, else 422)."""
        check_ref(instance_ref)
        body = {"phoneNumber": pairing_phone(phone)}
        answer = await session_call(
            self, "POST", self.url("api", instance_ref, "auth", "request-code"), body=body
        )
        code = non_empty_str(dig(answer, "code"))
        if code is None:
            raise unexpected(self.name, "no pairing code in the answer")
        return PairingCode(code)

    async def logout_session(self, instance_ref: str) -> None:
        """`POST /api/sessions/{session}/logout`: WAHA stops, logs out and starts a running session
        again, which then shows a new QR."""
        check_ref(instance_ref)
        await unless_unknown(session_call(self, "POST", self.url("api", "sessions", instance_ref, "logout")))

    async def delete_session(self, instance_ref: str) -> None:
        """`DELETE /api/sessions/{session}`: stop, log out, delete (idempotent in WAHA too)."""
        check_ref(instance_ref)
        await unless_unknown(session_call(self, "DELETE", self.url("api", "sessions", instance_ref)))


def _waha_status(info: Any) -> SessionStatus:
    status = dig(info, "status")
    if not isinstance(status, str):
        raise unexpected(WahaProvider.name, "no session status in the answer")
    return SessionStatus(state=WAHA_STATES.get(status, ConnectionState.UNKNOWN), reason=status)
