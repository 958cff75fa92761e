"""Where a resumable stream starts: the server names, in its initial metadata, the position the stream
starts after (OpsService.WatchIntents), so a client cut before its first message resumes from there."""

from __future__ import annotations

from collections.abc import Iterable

START_POSITION_KEY = "whatlead-position"


def start_position(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The position the initial metadata names; "" when it names none (the call failed first, or a server
    that does not send it)."""
    for key, value in metadata or ():
        if key == START_POSITION_KEY and isinstance(value, str) and value.isdigit():
            return value
    return ""
