"""The ledger: one entry per send the simulator accepted, kept in memory for tests and benchmarks."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One accepted send. `client_id` is the id the caller chose (WAHA's pre-generated `id`, wuzapi's
    `Id`), if any, even where the session ignored it. `api` is the API it came through ("waha" or
    "wuzapi"); `details` what the provider was given beyond the text (mimetype, filename, a reaction's
    target), so tests can check media reached the provider in the shape it wants."""

    seq: int
    session: str
    chat_id: str
    kind: str
    client_id: str | None
    provider_id: str
    at: float  # epoch seconds
    api: str = "waha"
    details: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "session": self.session,
            "chat_id": self.chat_id,
            "kind": self.kind,
            "client_id": self.client_id,
            "provider_id": self.provider_id,
            "at": self.at,
            "api": self.api,
            "details": dict(self.details),
        }


class Ledger:
    """Append-only record of accepted sends with running duplicate detection by client id.

    A client id seen twice means the same intent was sent twice (the thing WhatLead must never do),
    whichever session sent it.
    """

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []
        self._per_client: dict[str, int] = {}
        self._duplicates: set[str] = set()

    def record(
        self,
        *,
        session: str,
        chat_id: str,
        kind: str,
        client_id: str | None,
        provider_id: str,
        api: str = "waha",
        details: dict[str, str] | None = None,
    ) -> LedgerEntry:
        seq = len(self._entries) + 1
        entry = LedgerEntry(
            seq, session, chat_id, kind, client_id, provider_id, time.time(), api, dict(details or {})
        )
        self._entries.append(entry)
        if client_id is not None:
            seen = self._per_client.get(client_id, 0) + 1
            self._per_client[client_id] = seen
            if seen > 1:
                self._duplicates.add(client_id)
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> Sequence[LedgerEntry]:
        """Every entry in order (a live view: do not modify)."""
        return self._entries

    def duplicates(self) -> dict[str, int]:
        """Client ids accepted more than once, with how many times."""
        return {client_id: self._per_client[client_id] for client_id in sorted(self._duplicates)}

    def with_client_id(self, client_id: str) -> list[LedgerEntry]:
        return [entry for entry in self._entries if entry.client_id == client_id]

    def clear(self) -> None:
        self._entries.clear()
        self._per_client.clear()
        self._duplicates.clear()

    def summary(self, *, include_entries: bool = True, limit: int | None = None) -> dict[str, Any]:
        """What `GET /_sim/ledger` serves: counts, duplicates and (optionally) the last `limit` entries."""
        duplicates = self.duplicates()
        result: dict[str, Any] = {
            "count": len(self._entries),
            "by_session": dict(Counter(entry.session for entry in self._entries)),
            "by_kind": dict(Counter(entry.kind for entry in self._entries)),
            "by_api": dict(Counter(entry.api for entry in self._entries)),
            "with_client_id": sum(self._per_client.values()),
            "duplicates": duplicates,
            "duplicate_sends": sum(count - 1 for count in duplicates.values()),
        }
        if include_entries:
            entries = self._entries if limit is None else self._entries[-limit:] if limit > 0 else []
            result["entries"] = [entry.to_json() for entry in entries]
        return result
