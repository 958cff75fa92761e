"""What became of one send, before each API (WAHA, wuzapi) answers it in its own shape.

The quirks are the providers' own, each checked in their source:

- a refusal before the message left: a session that is not WORKING, a transient failure (500, 503, 429),
  error 463 in the answer (WAHA GOWS, wuzapi: whatsmeow's "server returned error 463"), or TurboZap's
  wrapped 500, which hides every WhatsApp error, 463 included, behind "Failed to send message"
  (jonadableite/TurboZap-api at cb1b54bb8978021293c9855850d4cd8cc7203317
  internal/interface/http/handler/message_handler.go; body from internal/interface/response/response.go
  at 0c84f108694ed4a63b3171a40a7baafb6a5d0776: `{success: false, error: {message}}`);
- an accepted message answered normally, with an empty body (WAHA WEBJS 2025.6.5), or with a 5xx although
  it left (a timeout or an error after the request reached WhatsApp).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Refusal(StrEnum):
    """Why a send was refused before it left (nothing recorded in the ledger)."""

    NOT_WORKING = "not_working"  # the session is STOPPED or FAILED (banned)
    TRANSIENT = "transient"  # `fail_next` / `error_before_send_next`: 500, 503 or 429
    TIMELOCK = "timelock"  # `timelock_next`: error 463 in the answer
    WRAPPED_500 = "wrapped_500"  # `wrapped_500_next`: TurboZap's 500 hiding a 463


class Answer(StrEnum):
    """How an accepted (recorded) send is answered."""

    NORMAL = "normal"
    EMPTY_BODY = "empty_body"  # `empty_body_next`: 201 and no body at all
    ERROR_AFTER_SEND = "error_after_send"  # `error_after_send_next`: 500 although the message left


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """A refused send (`refusal`, with `status` for TRANSIENT) or an accepted one (`message`, the stored
    WAHA message, and `raw_id`, its bare id, answered as `answer` says)."""

    refusal: Refusal | None = None
    status: int = 500
    message: dict[str, Any] | None = None
    raw_id: str | None = None
    answer: Answer = Answer.NORMAL


# TurboZap's text per send route (message_handler.go: SendText, SendMedia, SendAudio, SendReaction).
_TURBOZAP_TEXT = {
    "text": "Failed to send message",
    "image": "Failed to send media",
    "video": "Failed to send media",
    "file": "Failed to send media",
    "document": "Failed to send media",
    "voice": "Failed to send audio",
    "reaction": "Failed to send reaction",
}


def turbozap_500_body(kind: str) -> dict[str, Any]:
    """TurboZap's `response.InternalServerError(c, "Failed to send ...")` body."""
    return {"success": False, "error": {"message": _TURBOZAP_TEXT.get(kind, "Failed to send message")}}


# WAHA NOWEB without its store: every store read throws BadRequestException(errorMessage)
# (devlikeapro/waha src/core/engines/noweb/store/NowebInMemoryStore.ts
# at 55fc6a4282a42f1c2a6d4bbeff47e7baed884aa5).
NOWEB_STORE_MISSING = (
    'Enable NOWEB store "config.noweb.store.enabled=True" and "config.noweb.store.full_sync=True" when '
    "starting a new session. Read more: https://waha.devlike.pro/docs/engines/noweb#store"
)
