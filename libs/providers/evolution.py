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
    HttpProvider,
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
from libs.seedwork.shared_kernel import MessageType

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


class EvolutionProvider(HttpProvider):
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
