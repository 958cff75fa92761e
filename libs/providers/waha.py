"""WAHA (WhatsApp HTTP API, devlikeapro) adapter.

Auth header `X-Api-Key`; every send is `POST /api/send*` with the session in the body and a chat id
`<digits>@c.us` (or a group JID). The answer's `id` is the serialized message id
`true_<chatId>_<messageId>`, the same id `message.ack` webhooks carry. `sendText` accepts a pre-generated
`id`, and `GET /api/{session}/chats/{chatId}/messages/{messageId}` looks a message up, which is what
makes reconciliation after a lost answer possible.

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

from libs.providers.base import HttpFailure, HttpProvider, SpecificRule, dig, non_empty_str
from libs.providers.port import (
    MediaKind,
    ProviderCapabilities,
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


class WahaProvider(HttpProvider):
    """WAHA adapter; also the adapter for the built-in provider simulator, which speaks WAHA."""

    name = "WAHA"
    capabilities: ClassVar[ProviderCapabilities] = ProviderCapabilities(
        supports_client_message_id=True, supports_lookup=True
    )
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
        if request.client_message_id is not None:
            body["id"] = request.client_message_id
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
        return await self._send(_MEDIA_ENDPOINT[request.kind], body, chat)

    async def send_audio(self, request: SendAudioRequest) -> SentMessage:
        chat = chat_id(request.recipient)
        file: dict[str, Any] = {"mimetype": VOICE_MIMETYPE}
        if request.url is not None:
            file["url"] = request.url
        else:
            file["data"] = request.data_base64
        body = {"session": request.instance_ref, "chatId": chat, "file": file}
        return await self._send("sendVoice", body, chat)

    async def send_reaction(self, request: SendReactionRequest) -> SentMessage:
        chat = chat_id(request.recipient)
        body = {"session": request.instance_ref, "messageId": request.message_id, "reaction": request.emoji}
        data = await self.request_json("PUT", self.url("api", "reaction"), body=body)
        # Some engines answer a reaction with an empty object: the reaction has no id worth tracking.
        return SentMessage(message_id_of(data, chat) or "")

    async def find_sent_message(
        self, instance_ref: str, client_message_id: str, *, recipient: str
    ) -> SentMessage | None:
        """Ask WAHA for the message sent with `client_message_id`; None when WAHA does not know it."""
        chat = chat_id(recipient)
        message = serialized_id(chat, client_message_id)
        try:
            data = await self.request_json(
                "GET",
                self.url("api", instance_ref, "chats", chat, "messages", message),
                params={"downloadMedia": "false"},
                idempotent=True,
            )
        except ProviderError as exc:
            if exc.code == "http_404":  # the message is unknown (an unknown session stays an error)
                return None
            raise
        if not data:  # some engines answer null for an unknown id
            return None
        return SentMessage(message_id_of(data, chat) or message)

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
