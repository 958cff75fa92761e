"""The process's copy of the API key directory: every key's record by its public prefix, in memory.

A watcher of the directory bucket (libs.messaging.key_directory) fills it and keeps it current; the
authenticator reads it on every call, so checking a key costs a dict lookup and no remote call."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from libs.seedwork.access import Principal, Role


@dataclass(frozen=True, slots=True)
class KeyRecord:
    prefix: str
    sha256: bytes
    revoked: bool
    # Whom the key authenticates as (its organization, role and id), built once.
    principal: Principal

    @classmethod
    def of(
        cls,
        *,
        prefix: str,
        sha256: bytes,
        organization_id: str,
        role: Role,
        api_key_id: str,
        revoked: bool = False,
    ) -> KeyRecord:
        return cls(prefix, sha256, revoked, Principal(organization_id, role, api_key_id))


class KeyTable:
    """Records by prefix. Replaced whole after a (re)load, changed one record at a time by live updates."""

    def __init__(self, records: Iterable[KeyRecord] = ()) -> None:
        self._records: dict[str, KeyRecord] = {record.prefix: record for record in records}

    def get(self, prefix: str) -> KeyRecord | None:
        return self._records.get(prefix)

    def put(self, record: KeyRecord) -> None:
        self._records[record.prefix] = record

    def remove(self, prefix: str) -> None:
        self._records.pop(prefix, None)

    def replace(self, records: Iterable[KeyRecord]) -> None:
        self._records = {record.prefix: record for record in records}

    def __len__(self) -> int:
        return len(self._records)
