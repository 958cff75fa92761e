"""What a job sends: the recipient and the content the Gate approved, carried verbatim from the intent."""

from __future__ import annotations

from dataclasses import dataclass

from libs.seedwork.phone import is_group_jid, normalize_phone
from libs.seedwork.shared_kernel import MessageType, TargetKind


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundMessage:
    """The message of one intent. Only the fields of its `type` are set; the body is never logged."""

    target_kind: TargetKind
    recipient: str  # PHONE: E.164 digits without "+"; GROUP: the group JID
    type: MessageType
    text: str = ""
    audio_url: str = ""
    media_url: str = ""
    mime_type: str = ""
    caption: str = ""
    emoji: str = ""
    message_ref: str = ""  # REACTION: the provider message id reacted to

    def problems(self, prefix: str = "") -> list[tuple[str, str]]:
        """(field, description) of what makes this message unsendable (a PERMANENT failure, not a retry)."""
        violations = _Collector()
        if self.target_kind is TargetKind.PHONE:
            violations.check(
                normalize_phone(self.recipient) == self.recipient,
                prefix + "target.value",
                "must be E.164 digits without '+'",
            )
        else:
            violations.check(is_group_jid(self.recipient), prefix + "target.value", "must be a group JID")
        match self.type:
            case MessageType.TEXT:
                violations.check(bool(self.text), prefix + "payload.text", "must not be empty")
            case MessageType.AUDIO:
                violations.check(_is_url(self.audio_url), prefix + "payload.audio_url", "must be http(s)")
            case MessageType.MEDIA:
                violations.check(_is_url(self.media_url), prefix + "payload.media_url", "must be http(s)")
                violations.check("/" in self.mime_type, prefix + "payload.mime_type", "must be type/subtype")
            case MessageType.REACTION:
                violations.check(bool(self.message_ref), prefix + "payload.message_ref", "must not be empty")
        return violations.items


class _Collector:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def check(self, condition: bool, field: str, description: str) -> None:
        if not condition:
            self.items.append((field, description))


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))
