"""TurboZap-api (whatsmeow, Go/Fiber) adapter.

Auth header `X-API-Key`; sends are `POST /message/{instance}/{text|media|audio|reaction}` with `to`
(digits or a JID). Answers `{success, data: {id, message_id, status, timestamp}}`; errors
`{success: false, error: {message}}`. TurboZap offers neither client-chosen ids nor a lookup.

Every error of the send itself is a 500 "Failed to send message" (or "... media|audio|reaction"):
WhatsApp's own error, a 463 time-lock included, is dropped, and the message may have left before the
error (jonadableite/TurboZap-api at cb1b54bb8978021293c9855850d4cd8cc7203317,
`internal/interface/http/handler/message_handler.go`). Such a 500 is AMBIGUOUS, never retried blindly;
only "Failed to get instance" (a database read before anything is sent) is TRANSIENT.
"""

from __future__ import annotations

from typing import Any, ClassVar

from libs.providers.base import (
    HttpFailure,
    HttpProvider,
    SpecificRule,
    dig,
    non_empty_str,
    whatsapp_error_code,
)
from libs.providers.port import (
    ProviderError,
    Restriction,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    SentMessage,
)


def turbozap_rule(failure: HttpFailure) -> ProviderError | None:
    """TurboZap's instance guard (404 unknown, 400 not connected) and recipient validation."""
    common = failure.origin(TurboZapProvider.name)
    text = failure.lower_text()
    if failure.status == 404 and "instance not found" in text:
        return ProviderError.restricted(
            Restriction.DISCONNECTED, "instance_not_found", "TurboZap has no such instance", **common
        )
    if "not connected" in text:
        return ProviderError.restricted(
            Restriction.DISCONNECTED, "instance_disconnected", "TurboZap instance not connected", **common
        )
    if "logged out" in text or "logged_out" in text:
        return ProviderError.restricted(
            Restriction.LOGGED_OUT, "logged_out", "TurboZap instance logged out", **common
        )
    if failure.status == 400 and "invalid recipient" in text:
        return ProviderError.permanent("invalid_recipient", "TurboZap rejected the recipient", **common)
    if failure.status == 500 and not failure.idempotent and whatsapp_error_code(failure) is None:
        if "failed to get instance" in text:
            return ProviderError.transient(
                "instance_lookup_failed", "TurboZap could not read the instance", **common
            )
        # The wrapped error: sent, refused (a 463 among others) or lost; the text cannot say which.
        return ProviderError.ambiguous(
            "wrapped_500", "TurboZap's 500 may hide a send or a time-lock", **common
        )
    return None


class TurboZapProvider(HttpProvider):
    """TurboZap adapter (one TurboZap server, many named instances)."""

    name = "TURBOZAP"
    specific_rule: ClassVar[SpecificRule | None] = turbozap_rule

    def auth_headers(self) -> dict[str, str]:
        return {"X-API-Key": self._api_key}

    async def _send(self, instance_ref: str, kind: str, body: dict[str, Any]) -> SentMessage:
        return await self.post_for_message_id(
            self.url("message", instance_ref, kind),
            body,
            lambda data: (
                non_empty_str(dig(data, "data", "message_id")) or non_empty_str(dig(data, "message_id"))
            ),
        )

    async def send_text(self, request: SendTextRequest) -> SentMessage:
        return await self._send(request.instance_ref, "text", {"to": request.recipient, "text": request.text})

    async def send_media(self, request: SendMediaRequest) -> SentMessage:
        body: dict[str, Any] = {"to": request.recipient, "mime_type": request.mimetype}
        if request.url is not None:
            body["media_url"] = request.url
        else:
            body["base64"] = request.data_base64
        if request.caption:
            body["caption"] = request.caption
        if request.filename:
            body["file_name"] = request.filename
        return await self._send(request.instance_ref, "media", body)

    async def send_audio(self, request: SendAudioRequest) -> SentMessage:
        body: dict[str, Any] = {"to": request.recipient, "ptt": True}
        if request.url is not None:
            body["audio_url"] = request.url
        else:
            body["base64"] = request.data_base64
        return await self._send(request.instance_ref, "audio", body)

    async def send_reaction(self, request: SendReactionRequest) -> SentMessage:
        body = {"to": request.recipient, "message_id": request.message_id, "emoji": request.emoji}
        return await self._send(request.instance_ref, "reaction", body)
