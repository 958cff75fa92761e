"""wuzapi (asternic/wuzapi, whatsmeow) adapter.

Auth header `token: <user token>`: in wuzapi a user *is* one WhatsApp instance, so one adapter object
serves one instance (`instance_ref` only names it in errors). Sends are `POST /chat/send/*` with
`Phone` (digits or a group JID); media travel as data URLs. The client may choose the message `Id`,
which makes the id known before the call. wuzapi has no lookup of sent messages.

Answers: `{code, data: {Details, Id, Timestamp}, success}`; errors `{code, error, success: false}`,
mostly 500 with whatsmeow's error text.
"""

from __future__ import annotations

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
)

_MEDIA = {
    MediaKind.IMAGE: ("image", "Image"),
    MediaKind.VIDEO: ("video", "Video"),
    MediaKind.DOCUMENT: ("document", "Document"),
}


def wuzapi_rule(failure: HttpFailure) -> ProviderError | None:
    """wuzapi's error texts, which are whatsmeow's errors passed through."""
    common = failure.origin(WuzapiProvider.name)
    text = failure.lower_text()
    if "no session" in text or "not connected" in text:
        return ProviderError.restricted(
            Restriction.DISCONNECTED, "no_session", "wuzapi instance not connected", **common
        )
    if "not logged in" in text or "device jid" in text:
        return ProviderError.restricted(
            Restriction.LOGGED_OUT, "not_logged_in", "wuzapi instance logged out", **common
        )
    return None


def _data_url(mimetype: str, data_base64: str) -> str:
    return f"data:{mimetype};base64,{data_base64}"


class WuzapiProvider(HttpProvider):
    """wuzapi adapter for one wuzapi user (= one WhatsApp instance); `api_key` is that user's token."""

    name = "WUZAPI"
    capabilities: ClassVar[ProviderCapabilities] = ProviderCapabilities(
        supports_client_message_id=True, supports_lookup=False
    )
    specific_rule: ClassVar[SpecificRule | None] = wuzapi_rule

    def auth_headers(self) -> dict[str, str]:
        return {"token": self._api_key}

    async def _send(
        self, path: tuple[str, ...], body: dict[str, Any], client_message_id: str | None = None
    ) -> SentMessage:
        if client_message_id is not None:
            body["Id"] = client_message_id  # wuzapi sends under the id we chose
        return await self.post_for_message_id(
            self.url(*path), body, lambda data: non_empty_str(dig(data, "data", "Id"))
        )

    def _require_inline(self, data_base64: str | None) -> str:
        # wuzapi takes media as data URLs; fetching a URL is the caller's job, not the provider's.
        if data_base64 is None:
            raise ProviderError.permanent(
                "unsupported_media_source", "wuzapi needs inline (base64) media", provider=self.name
            )
        return data_base64

    async def send_text(self, request: SendTextRequest) -> SentMessage:
        body: dict[str, Any] = {"Phone": request.recipient, "Body": request.text}
        return await self._send(("chat", "send", "text"), body, request.client_message_id)

    async def send_media(self, request: SendMediaRequest) -> SentMessage:
        endpoint, field = _MEDIA[request.kind]
        data = self._require_inline(request.data_base64)
        body: dict[str, Any] = {"Phone": request.recipient, field: _data_url(request.mimetype, data)}
        if request.caption and request.kind is not MediaKind.DOCUMENT:
            body["Caption"] = request.caption
        if request.kind is MediaKind.DOCUMENT:
            body["FileName"] = request.filename or "document"
        return await self._send(("chat", "send", endpoint), body, request.client_message_id)

    async def send_audio(self, request: SendAudioRequest) -> SentMessage:
        data = self._require_inline(request.data_base64)
        # wuzapi parses the data URL itself; a ";codecs=opus" parameter would break its parser.
        body: dict[str, Any] = {"Phone": request.recipient, "Audio": _data_url("audio/ogg", data)}
        return await self._send(("chat", "send", "audio"), body, request.client_message_id)

    async def send_reaction(self, request: SendReactionRequest) -> SentMessage:
        target = f"me:{request.message_id}" if request.target_from_me else request.message_id
        body = {"Phone": request.recipient, "Body": request.emoji, "Id": target}
        return await self._send(("chat", "react"), body)
