"""Evolution API (2.x) adapter.

Auth header `apikey`; sends under `/message/send*/{instance}`; the message id is `key.id` of the answer.
Evolution checks every number with `onWhatsApp` first and answers 400 with `exists:false` when it is not
on WhatsApp. It cannot send with a client-chosen id (2.3.6); a lost send is looked for with
`POST /chat/findMessages/{instance}` among our messages to the chat since the attempt, which only finds
what Evolution saved (DATABASE_SAVE_DATA_NEW_MESSAGE), so a miss proves nothing.

Errors (EvolutionAPI/evolution-api at 2.3.6, `whatsapp.baileys.service.ts` `sendMessageWithTyping`):
every failure inside a send (Baileys timeouts, rate-overlimit, a database error after the message left)
is rethrown as `BadRequestException(error.toString())`, a 400 like any refusal. Only two 400 bodies prove
the send never happened: `response.message: [{exists: false, ...}]` (the number check) and the request
schema's rejection, a list of messages inside the list (`abstract.router.ts` `dataValidate`). Every
other 400 is AMBIGUOUS.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from libs.providers.base import (
    HttpFailure,
    SpecificRule,
    dig,
    non_empty_str,
    safe_hint,
    whatsapp_error_code,
)
from libs.providers.capabilities import LookupMethod, LookupRequest, LookupResult, capabilities_of
from libs.providers.port import (
    ProviderError,
    Restriction,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    SentMessage,
    is_group,
)
from libs.providers.sessions import (
    HttpSessions,
    PairingCode,
    QrCode,
    SessionStatus,
    SessionWebhook,
    check_ref,
    creating_if_unknown,
    pairing_phone,
    png_of,
    says,
    session_call,
    unexpected,
    unless_unknown,
)
from libs.seedwork.shared_kernel import ConnectionState, MessageType

# Refusals Evolution raises before it sends anything, as plain strings (2.3.6 `textMessage`,
# `audioWhatsapp`); any other single string is the send's own catch-all.
_PRE_SEND_REFUSALS = frozenset({"text is required", "file buffer, url, or base64 audio is required"})
# Evolution's clock and WhatsApp's timestamps may trail ours: look a little before the attempt began.
_LOOKUP_SKEW = timedelta(seconds=30)
_LOOKUP_PAGE = 50
_REACTION_TYPE = "reactionMessage"


def _messages(body: Any) -> list[Any]:
    value = dig(body, "response", "message")
    if isinstance(value, list):
        return value
    return [value] if value is not None else []


def _hint(failure: HttpFailure) -> str:
    messages = [m for m in _messages(failure.body) for m in (m if isinstance(m, list) else [m])]
    return safe_hint("; ".join(m for m in messages if isinstance(m, str)))


def evolution_rule(failure: HttpFailure) -> ProviderError | None:
    """Evolution's own error bodies: `{status, error, response: {message: [...]}}`."""
    common = failure.origin(EvolutionProvider.name)
    messages = _messages(failure.body)
    text = failure.lower_text()
    if failure.status == 400:
        if any(isinstance(m, dict) and m.get("exists") is False for m in messages):
            return ProviderError.permanent("not_on_whatsapp", "the number is not on WhatsApp", **common)
        if whatsapp_error_code(failure) in (401, 463):
            return None  # WhatsApp's own refusal, read by the common rules
        if any(isinstance(m, list) for m in messages):
            return ProviderError.permanent(
                "invalid_request", "Evolution rejected the request schema", **common
            )
        if any(isinstance(m, str) and m.strip().lower() in _PRE_SEND_REFUSALS for m in messages):
            return ProviderError.permanent("invalid_request", _hint(failure), **common)
        # The catch-all: the message may have left before whatever failed.
        hint = _hint(failure) or "Evolution's 400 does not prove a refusal"
        return ProviderError.ambiguous("http_400", hint, **common)
    if failure.status == 404 and "does not exist" in text:
        return ProviderError.restricted(
            Restriction.DISCONNECTED, "instance_not_found", "Evolution has no such instance", **common
        )
    return None


def _number(recipient: str) -> str:
    return recipient  # digits, or a group JID: Evolution accepts both in `number`


def _remote_jid(recipient: str) -> str:
    return recipient if is_group(recipient) else f"{recipient}@s.whatsapp.net"


def _oldest_match(records: list[Any], request: LookupRequest, since: int) -> str | None:
    """The id of our oldest message of the request's kind (a reaction or not) in `records`."""
    want_reaction = request.message_type is MessageType.REACTION
    matches: list[tuple[int, str]] = []
    for record in records:
        key = dig(record, "key")
        message_id = non_empty_str(dig(key, "id"))
        if message_id is None or dig(key, "fromMe") is not True:
            continue
        if (dig(record, "messageType") == _REACTION_TYPE) != want_reaction:
            continue
        stamp = dig(record, "messageTimestamp")
        stamp = int(stamp) if isinstance(stamp, int | float) else since
        if stamp >= since:
            matches.append((stamp, message_id))
    return min(matches)[1] if matches else None


# --- sessions (ProviderSessions) ----------------------------------------------------------------------
#
# EvolutionAPI/evolution-api at 2.3.6 (3454bec7): src/api/routes/instance.router.ts,
# src/api/controllers/instance.controller.ts (createInstance, connectToWhatsapp, logout, deleteInstance),
# src/api/guards/instance.guard.ts (404 unknown instance, 403 name in use),
# src/api/integrations/event/webhook/ (webhook/set, `jwt_key` header), whatsapp.baileys.service.ts
# (`qrCode` {pairingCode, code, base64 data URL, count}; the pairing code is asked on the next QR).

# The events the gateway reads (gateway/domain/normalization/evolution.py).
EVOLUTION_WEBHOOK_EVENTS = ("MESSAGES_UPSERT", "MESSAGES_UPDATE", "CONNECTION_UPDATE", "QRCODE_UPDATED")
_BAILEYS = "WHATSAPP-BAILEYS"
# Evolution reads `headers.jwt_key` as the key of an HS256 JWT it sends as `Authorization: Bearer`.
_JWT_KEY = "jwt_key"
_PAIRING_RETRY_AFTER = 20.0  # the next QR, when Evolution asks WhatsApp for the pairing code


_EVOLUTION_CONNECT_STATES = {
    "open": ConnectionState.CONNECTED,
    "connecting": ConnectionState.CONNECTING,
    "close": ConnectionState.DISCONNECTED,
}


def _connect_status(answer: Any, provider: str) -> SessionStatus:
    """Read `connect`'s two answers: `{instance: {instanceName, state}}` or a `qrCode`."""
    state = dig(answer, "instance", "state")
    if isinstance(state, str):
        return SessionStatus(
            state=_EVOLUTION_CONNECT_STATES.get(state, ConnectionState.UNKNOWN), reason=state
        )
    if not isinstance(answer, dict):
        raise unexpected(provider, "connect answered something else than an object")
    code, image = non_empty_str(answer.get("code")), non_empty_str(answer.get("base64"))
    if code is None and image is None:
        return SessionStatus(state=ConnectionState.CONNECTING, reason="connecting")  # no QR yet
    qr = QrCode(raw=code or "", png=png_of(image, provider) if image else b"")
    return SessionStatus(state=ConnectionState.QR_REQUIRED, reason="qrcode", qr=qr)


class EvolutionProvider(HttpSessions):
    """Evolution API adapter (one instance of Evolution, many WhatsApp instances behind it)."""

    name = "EVOLUTION"
    specific_rule: ClassVar[SpecificRule | None] = evolution_rule

    def auth_headers(self) -> dict[str, str]:
        return {"apikey": self._api_key}

    async def _send(self, endpoint: str, instance_ref: str, body: dict[str, Any]) -> SentMessage:
        url = self.url("message", endpoint, instance_ref)
        return await self.post_for_message_id(url, body, lambda data: non_empty_str(dig(data, "key", "id")))

    async def send_text(self, request: SendTextRequest) -> SentMessage:
        body = {"number": _number(request.recipient), "text": request.text}
        return await self._send("sendText", request.instance_ref, body)

    async def send_media(self, request: SendMediaRequest) -> SentMessage:
        body: dict[str, Any] = {
            "number": _number(request.recipient),
            "mediatype": request.kind.value.lower(),
            "mimetype": request.mimetype,
            "media": request.url if request.url is not None else request.data_base64,
        }
        if request.caption:
            body["caption"] = request.caption
        if request.filename:
            body["fileName"] = request.filename
        return await self._send("sendMedia", request.instance_ref, body)

    async def send_audio(self, request: SendAudioRequest) -> SentMessage:
        body = {
            "number": _number(request.recipient),
            "audio": request.url if request.url is not None else request.data_base64,
        }
        return await self._send("sendWhatsAppAudio", request.instance_ref, body)

    async def send_reaction(self, request: SendReactionRequest) -> SentMessage:
        body = {
            "key": {
                "remoteJid": _remote_jid(request.recipient),
                "fromMe": request.target_from_me,
                "id": request.message_id,
            },
            "reaction": request.emoji,
        }
        return await self._send("sendReaction", request.instance_ref, body)

    async def find_sent_message(self, request: LookupRequest) -> LookupResult:
        """Our messages to the recipient's chat since the attempt began (`findMessages`): any one found
        means the send left; none proves nothing (Evolution saves messages only when configured to, and
        may file the chat under an `@lid`)."""
        capabilities = capabilities_of(request.profile)
        if capabilities.lookup is not LookupMethod.BY_CHAT_AND_TIME:
            return LookupResult.inconclusive("lookup_unsupported")
        sent_after = request.sent_after
        if sent_after.tzinfo is None:  # a naive time is UTC, as everywhere in WhatLead
            sent_after = sent_after.replace(tzinfo=UTC)
        since = sent_after - _LOOKUP_SKEW
        until = max(datetime.now(UTC), sent_after) + timedelta(hours=1)
        body = {
            "where": {
                "key": {"remoteJid": _remote_jid(request.recipient), "fromMe": True},
                # Evolution applies the time filter only when both ends are given.
                "messageTimestamp": {"gte": since.isoformat(), "lte": until.isoformat()},
            },
            "offset": _LOOKUP_PAGE,
            "page": 1,
        }
        answer = await self.lookup("POST", self.url("chat", "findMessages", request.instance_ref), body=body)
        if not answer.ok:
            return LookupResult.inconclusive(f"http_{answer.status}")
        records = dig(answer.body, "messages", "records")
        if not isinstance(records, list):
            return LookupResult.inconclusive("unknown_shape")
        found = _oldest_match(records, request, int(since.timestamp()))
        if found is not None:
            return LookupResult.found(found)
        if capabilities.miss_proves_absence:  # never for Evolution 2.3.6; kept for a later row
            return LookupResult.absent()
        return LookupResult.inconclusive("not_found")

    # --- sessions (ProviderSessions; sources above the class) -----------------------------------------

    offers_pairing_code: ClassVar[bool] = True

    async def _create(self, instance_ref: str) -> None:
        """`POST /instance/create {instanceName, integration, qrcode: false}` (no connection yet); a name
        in use (403 `This name "…" is already in use.`) is the instance we want."""
        body = {"instanceName": instance_ref, "integration": _BAILEYS, "qrcode": False}
        in_use = says("already in use", status=403)
        await session_call(self, "POST", self.url("instance", "create"), body=body, done_if=in_use)

    async def _connect(self, instance_ref: str, number: str | None = None) -> Any:
        params = {"number": number} if number else None
        answer = await session_call(self, "GET", self.url("instance", "connect", instance_ref), params=params)
        if isinstance(answer, dict) and answer.get("error") is True:
            # connectToWhatsapp answers its own failures 200 {error: true, message}.
            raise ProviderError.transient(
                "connect_failed", safe_hint(answer.get("message", "")), provider=self.name
            )
        return answer

    async def start_session(self, instance_ref: str) -> SessionStatus:
        """Create the instance if needed, then `GET /instance/connect/{instance}`: an open instance
        answers `{instance: {state: "open"}}`, a connecting one its current `qrCode`, a closed one is
        reconnected and answers the `qrCode` it has two seconds later (possibly none yet)."""
        check_ref(instance_ref)
        await self._create(instance_ref)
        return _connect_status(await self._connect(instance_ref), self.name)

    async def set_webhook(self, instance_ref: str, webhook: SessionWebhook) -> None:
        """`POST /webhook/set/{instance} {webhook: {enabled, url, headers: {jwt_key}, byEvents, base64,
        events}}`; an unknown instance is created first."""
        check_ref(instance_ref)
        body = {
            "webhook": {
                "enabled": True,
                "url": webhook.url,
                "headers": {**webhook.headers, _JWT_KEY: webhook.secret},
                "byEvents": False,
                "base64": False,
                "events": list(webhook.events or EVOLUTION_WEBHOOK_EVENTS),
            }
        }
        url = self.url("webhook", "set", instance_ref)
        await creating_if_unknown(
            lambda: session_call(self, "POST", url, body=body), lambda: self._create(instance_ref)
        )

    async def get_qr(self, instance_ref: str) -> QrCode | None:
        """The `qrCode` of `GET /instance/connect/{instance}` (a closed instance is reconnected by it)."""
        check_ref(instance_ref)
        return _connect_status(await self._connect(instance_ref), self.name).qr

    async def request_pairing_code(self, instance_ref: str, phone: str) -> PairingCode:
        """`GET /instance/connect/{instance}?number=<digits>` → `pairingCode`. Evolution asks WhatsApp
        for it on the next QR of a connection started with the number, so an instance already showing
        QR codes answers without one: TRANSIENT "pairing_code_pending", ask again after the next QR."""
        check_ref(instance_ref)
        answer = await self._connect(instance_ref, pairing_phone(phone))
        code = non_empty_str(dig(answer, "pairingCode"))
        if code is None:
            raise ProviderError.transient(
                "pairing_code_pending",
                "Evolution gives the pairing code with the next QR",
                retry_after=_PAIRING_RETRY_AFTER,
                provider=self.name,
            )
        return PairingCode(code)

    async def logout_session(self, instance_ref: str) -> None:
        """`DELETE /instance/logout/{instance}`; a closed instance (400 "is not connected") is done."""
        check_ref(instance_ref)
        closed = says("is not connected", status=400)
        url = self.url("instance", "logout", instance_ref)
        await unless_unknown(session_call(self, "DELETE", url, done_if=closed))

    async def delete_session(self, instance_ref: str) -> None:
        """`DELETE /instance/delete/{instance}` (Evolution logs an open instance out first)."""
        check_ref(instance_ref)
        await unless_unknown(session_call(self, "DELETE", self.url("instance", "delete", instance_ref)))
