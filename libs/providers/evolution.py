"""Evolution API (2.x) adapter.

Auth header `apikey`; sends under `/message/send*/{instance}`; the message id is `key.id` of the answer.
Evolution checks every number with `onWhatsApp` first and answers 400 with `exists:false` when it is not
on WhatsApp. It cannot send with a client-chosen id, nor look a message up by one.
"""

from __future__ import annotations

from typing import Any, ClassVar

from libs.providers.base import HttpFailure, HttpProvider, SpecificRule, dig, non_empty_str
from libs.providers.port import (
    ProviderCapabilities,
    ProviderError,
    Restriction,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    SentMessage,
    is_group,
)


def _messages(body: Any) -> list[Any]:
    value = dig(body, "response", "message")
    if isinstance(value, list):
        return value
    return [value] if value is not None else []


def evolution_rule(failure: HttpFailure) -> ProviderError | None:
    """Evolution's own error bodies: `{status, error, response: {message: [...]}}`."""
    common = failure.origin(EvolutionProvider.name)
    messages = _messages(failure.body)
    if failure.status == 400 and any(isinstance(m, dict) and m.get("exists") is False for m in messages):
        return ProviderError.permanent("not_on_whatsapp", "the number is not on WhatsApp", **common)
    text = failure.lower_text()
    if failure.status == 404 and "does not exist" in text:
        return ProviderError.restricted(
            Restriction.DISCONNECTED, "instance_not_found", "Evolution has no such instance", **common
        )
    if "connection closed" in text:
        # Baileys lost its socket; Evolution reconnects by itself, so a later retry usually works.
        return ProviderError.transient("connection_closed", "Evolution: Connection Closed", **common)
    return None


def _number(recipient: str) -> str:
    return recipient  # digits, or a group JID: Evolution accepts both in `number`


def _remote_jid(recipient: str) -> str:
    return recipient if is_group(recipient) else f"{recipient}@s.whatsapp.net"


class EvolutionProvider(HttpProvider):
    """Evolution API adapter (one instance of Evolution, many WhatsApp instances behind it)."""

    name = "EVOLUTION"
    capabilities: ClassVar[ProviderCapabilities] = ProviderCapabilities(
        supports_client_message_id=False, supports_lookup=False
    )
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
