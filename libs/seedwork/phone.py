"""Phone numbers as WhatsApp addresses them: E.164 digits without the plus sign."""

from __future__ import annotations

import re

_E164_DIGITS = re.compile(r"^[1-9][0-9]{7,14}$")
_GROUP_JID = re.compile(r"^[0-9]{5,30}(-[0-9]{5,20})?@g\.us$")


def normalize_phone(raw: str) -> str | None:
    """Digits of an E.164 number ('+55 11 98765-4321' -> '5511987654321'), or None when malformed.

    Only formatting characters are dropped; letters or a leading zero make the number malformed
    rather than silently guessed at.
    """
    if not raw:
        return None
    stripped = raw.strip()
    if stripped.startswith("+"):
        stripped = stripped[1:]
    digits = re.sub(r"[\s\-().]", "", stripped)
    return digits if _E164_DIGITS.match(digits) else None


def is_group_jid(value: str) -> bool:
    return bool(_GROUP_JID.match(value or ""))
