"""The directory of API keys every service authenticates from: a JetStream key-value bucket.

Ops writes it (its consumer of its own ApiKeyCreated/ApiKeyRevoked events puts each key's current record,
at least once); every service watches it and keeps the records in memory, so checking a key costs no call.
A bucket, unlike the ops stream, keeps every key for as long as it exists (streams age out after 7 days).

Bucket `<ROOT>_API_KEYS`; entry key = the key's public prefix; value = a serialized
`whatlead.events.v1.ApiKeyCreated` (the key's metadata, `revoked_at` set once revoked, and the SHA-256 of
the secret)."""

from __future__ import annotations

import contextlib

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from whatlead.events.v1 import ops_events_pb2


def bucket_name(root: str) -> str:
    return f"{root.upper()}_API_KEYS"


async def ensure_key_directory(js: JetStreamContext, root: str) -> KeyValue:
    """The bucket, created when missing (every writer and watcher may be first)."""
    name = bucket_name(root)
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(bucket=name, history=1, description="WhatLead API keys, by prefix")


async def put_key(directory: KeyValue, record: ops_events_pb2.ApiKeyCreated) -> None:
    await directory.put(record.api_key.prefix, record.SerializeToString())


def decode_key(value: bytes) -> ops_events_pb2.ApiKeyCreated:
    return ops_events_pb2.ApiKeyCreated.FromString(value)


async def delete_key_directory(js: JetStreamContext, root: str) -> None:
    """For tests: remove the run's bucket."""
    with contextlib.suppress(BucketNotFoundError):
        await js.delete_key_value(bucket_name(root))
