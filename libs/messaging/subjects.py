"""Subject tokens made of identifiers, so a subscriber can filter one organization's (or instance's) events.

A NATS subject token must not contain '.', '*', '>' or whitespace, and is best kept to letters, digits,
'-' and '_'. Our ids (UUIDv7s) are used as they are; any other id becomes '_' and the base32 of its UTF-8
bytes (lower case, no padding): never a plain id, since those have no '_'. Every id gets one token, and no
two ids the same one.
"""

from __future__ import annotations

import base64
import re

_PLAIN = re.compile(r"[A-Za-z0-9-]{1,64}")


def id_token(identifier: str) -> str:
    """The subject token of an id (an organization, an instance)."""
    if _PLAIN.fullmatch(identifier):
        return identifier
    encoded = base64.b32encode(identifier.encode()).decode().rstrip("=").lower()
    return f"_{encoded}"


def organization_token(organization_id: str) -> str:
    """The last token of an organization's per-organization subjects (`ops.intent.changed.<token>`)."""
    return id_token(organization_id)
