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
from libs.providers.sessions import (
    HttpSessions,
    PairingCode,
    QrCode,
    SessionStatus,
    SessionWebhook,
    check_ref,
    creating_if_unknown,
    pairing_unsupported,
    png_of,
    says,
    session_call,
    unexpected,
    unless_unknown,
)
from libs.seedwork.shared_kernel import ConnectionState
from libs.webhooks import STATIC_SECRET_HEADER


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


class TurboZapProvider(HttpSessions):
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

    # --- sessions (ProviderSessions) ------------------------------------------------------------------
    #
    # jonadableite/TurboZap-api at 7c79ca25: internal/interface/http/router.go (the instance routes
    # without the /api prefix, as the sends use; the webhook routes only under /api),
    # handler/instance_handler.go (Create: 409 name taken; GetQRCode: status connected / pending /
    # qrcode with `qr_code` a PNG data URL and `code` its text), handler/webhook_handler.go and
    # dto/webhook_dto.go (`{url, events?, headers, enabled}`). TurboZap has no pairing code.

    async def _create(self, instance_ref: str) -> None:
        """`POST /instance/create {name}`; a name taken (409) is the instance we want."""
        taken = says("already exists", status=409)
        await session_call(
            self, "POST", self.url("instance", "create"), body={"name": instance_ref}, done_if=taken
        )

    async def start_session(self, instance_ref: str) -> SessionStatus:
        """Create the instance if needed, then `POST /instance/{name}/connect` (`{name, status:
        "connecting"}`); the QR follows at `GET /instance/{name}/qrcode`."""
        check_ref(instance_ref)
        await self._create(instance_ref)
        answer = await session_call(self, "POST", self.url("instance", instance_ref, "connect"))
        status = dig(answer, "data", "status")
        if not isinstance(status, str):
            raise unexpected(self.name, "no status in the connect answer")
        return SessionStatus(state=_TURBOZAP_CONNECT.get(status, ConnectionState.UNKNOWN), reason=status)

    async def set_webhook(self, instance_ref: str, webhook: SessionWebhook) -> None:
        """`POST /api/webhook/{name}/set {url, headers, enabled, events?}` with the secret as the static
        header the gateway checks; no `events` means all of them. An unknown instance is created first."""
        check_ref(instance_ref)
        body: dict[str, Any] = {
            "url": webhook.url,
            "headers": {**webhook.headers, STATIC_SECRET_HEADER: webhook.secret},
            "enabled": True,
        }
        if webhook.events:
            body["events"] = list(webhook.events)
        url = self.url("api", "webhook", instance_ref, "set")
        await creating_if_unknown(
            lambda: session_call(self, "POST", url, body=body), lambda: self._create(instance_ref)
        )

    async def get_qr(self, instance_ref: str) -> QrCode | None:
        """`GET /instance/{name}/qrcode` → `{name, status, qr_code, code}`; "connected" and "pending"
        (no QR yet) carry none. TurboZap connects a disconnected instance to answer it."""
        check_ref(instance_ref)
        data = dig(await session_call(self, "GET", self.url("instance", instance_ref, "qrcode")), "data")
        code, image = non_empty_str(dig(data, "code")), non_empty_str(dig(data, "qr_code"))
        if dig(data, "status") != "qrcode" or (code is None and image is None):
            return None
        return QrCode(raw=code or "", png=png_of(image, self.name) if image else b"")

    async def request_pairing_code(self, instance_ref: str, phone: str) -> PairingCode:
        raise pairing_unsupported(self.name)

    async def logout_session(self, instance_ref: str) -> None:
        """`POST /instance/{name}/logout`."""
        check_ref(instance_ref)
        await unless_unknown(session_call(self, "POST", self.url("instance", instance_ref, "logout")))

    async def delete_session(self, instance_ref: str) -> None:
        """`DELETE /instance/{name}` (TurboZap drops its WhatsApp client, then the row)."""
        check_ref(instance_ref)
        await unless_unknown(session_call(self, "DELETE", self.url("instance", instance_ref)))


# internal/domain/entity/instance.go `InstanceStatus`, as Connect answers it.
_TURBOZAP_CONNECT = {
    "connected": ConnectionState.CONNECTED,
    "connecting": ConnectionState.CONNECTING,
    "qrcode": ConnectionState.QR_REQUIRED,
    "disconnected": ConnectionState.DISCONNECTED,
}
