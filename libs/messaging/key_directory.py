"""The directory of API keys every service authenticates from: a JetStream key-value bucket.

Ops writes it (its consumer of its own ApiKeyCreated/ApiKeyRevoked events puts each key's current record,
at least once); every service watches it and keeps the records in memory, so checking a key costs no call.
A bucket, unlike the ops stream, keeps every key for as long as it exists (streams age out after 7 days).

Bucket `<ROOT>_API_KEYS`; entry key = the key's public prefix; value = a serialized
`whatlead.events.v1.ApiKeyCreated` (the key's metadata, `revoked_at` set once revoked, and the SHA-256 of
the secret)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import cast

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, BucketNotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from libs.rpc.keys import KeyRecord, KeyTable
from libs.rpc.roles import role_from_proto
from whatlead.events.v1 import ops_events_pb2

log = logging.getLogger(__name__)


def bucket_name(root: str) -> str:
    return f"{root.upper()}_API_KEYS"


async def ensure_key_directory(js: JetStreamContext, root: str) -> KeyValue:
    """The bucket, created when missing (every writer and watcher may be first)."""
    name = bucket_name(root)
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(bucket=name, history=1, description="WhatLead API keys, by prefix")
    except BadRequestError:
        # Another process created it between our look and our create (processes of one pod start together:
        # JetStream answers "subjects overlap with an existing stream"): theirs is the one.
        return await js.key_value(name)


async def put_key(directory: KeyValue, record: ops_events_pb2.ApiKeyCreated) -> None:
    await directory.put(record.api_key.prefix, record.SerializeToString())


def decode_key(value: bytes) -> ops_events_pb2.ApiKeyCreated:
    return ops_events_pb2.ApiKeyCreated.FromString(value)


async def delete_key_directory(js: JetStreamContext, root: str) -> None:
    """For tests: remove the run's bucket."""
    with contextlib.suppress(BucketNotFoundError):
        await js.delete_key_value(bucket_name(root))


# --- Watching it -------------------------------------------------------------------------------------------

# How long a process waits at start for the directory's current keys before it gives up (and says why).
LOAD_TIMEOUT_SECONDS = 15.0
# How often a quiet watch checks whether the connection was re-established under it (then it re-watches).
_CHECK_SECONDS = 1.0


def key_record(value: bytes) -> KeyRecord | None:
    """The table's record of a directory entry; None for an entry that names no usable key."""
    created = decode_key(value)
    key = created.api_key
    role = role_from_proto(key.role)
    if not key.prefix or not key.organization_id or role is None:
        return None
    return KeyRecord.of(
        prefix=key.prefix,
        sha256=created.secret_sha256,
        organization_id=key.organization_id,
        role=role,
        api_key_id=key.id,
        revoked=key.HasField("revoked_at"),
    )


class KeyDirectoryWatcher:
    """Keeps a KeyTable equal to the bucket: the current entries at start (`load`), then every change as it
    happens (`run`, a worker of the process; a revocation reaches the table in milliseconds). A watch that
    fails, or a connection re-established under it, is watched again from the current entries."""

    def __init__(self, nats: Client, js: JetStreamContext, root: str, table: KeyTable) -> None:
        self._nats = nats
        self._js = js
        self._root = root
        self.table = table
        self._watcher: KeyValue.KeyWatcher | None = None
        self._reconnects = 0

    async def load(self, timeout: float = LOAD_TIMEOUT_SECONDS) -> None:
        """Fill the table with the directory's current keys, or fail saying what was not reached."""
        try:
            await asyncio.wait_for(self._watch(), timeout)
        except (TimeoutError, nats.errors.Error) as exc:
            raise RuntimeError(
                f"the API key directory ({bucket_name(self._root)}) did not load within {timeout:g} s: "
                f"is NATS JetStream reachable? ({type(exc).__name__})"
            ) from exc

    async def _watch(self) -> None:
        """A new watch: read the current entries up to the end marker, then swap them in at once."""
        await self._stop_watch()
        self._reconnects = self._nats.stats["reconnects"]
        directory = await ensure_key_directory(self._js, self._root)
        watcher = await directory.watchall()
        records: dict[str, KeyRecord] = {}
        try:
            while (entry := await _updates(watcher)(timeout=None)) is not None:
                if (record := _entry_record(entry)) is not None:
                    records[entry.key] = record
                else:
                    records.pop(entry.key, None)
        except BaseException:  # timed out or cancelled half-way: this watch is dropped, not left running
            self._watcher = watcher
            await self._stop_watch()
            raise
        self.table.replace(records.values())
        self._watcher = watcher
        log.info("api key directory loaded", extra={"keys": len(records)})

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if self._watcher is None or self._nats.stats["reconnects"] != self._reconnects:
                    await asyncio.wait_for(self._watch(), LOAD_TIMEOUT_SECONDS)
                assert self._watcher is not None
                try:
                    entry = await _updates(self._watcher)(timeout=_CHECK_SECONDS)
                except nats.errors.TimeoutError:
                    continue
                if entry is not None:
                    if (record := _entry_record(entry)) is not None:
                        self.table.put(record)
                    else:
                        self.table.remove(entry.key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away or the bucket gone: keep the table, watch again soon
                log.warning("api key directory watch failed", extra={"error": type(exc).__name__})
                self._watcher = None
                with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), _CHECK_SECONDS)
        await self._stop_watch()

    async def _stop_watch(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            with contextlib.suppress(Exception):
                await cast("Callable[[], Awaitable[None]]", watcher.stop)()


def _updates(watcher: KeyValue.KeyWatcher) -> Callable[..., Awaitable[KeyValue.Entry | None]]:
    """The watcher's next entry (None: the initial entries are over), typed: nats-py leaves it untyped."""
    return cast("Callable[..., Awaitable[KeyValue.Entry | None]]", watcher.updates)


def _entry_record(entry: KeyValue.Entry) -> KeyRecord | None:
    """The record an entry puts in the table; None when it takes its key out (deleted, or not a key)."""
    if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
        return None
    try:
        record = key_record(entry.value)
    except Exception:  # a value that does not decode names no key; the others still count
        record = None
    if record is None or record.prefix != entry.key:
        log.warning("api key directory entry ignored: not a key record", extra={"entry": entry.key})
        return None
    return record
