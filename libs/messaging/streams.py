"""JetStream stream provisioning: one stream per bounded context, created or updated idempotently."""

from __future__ import annotations

import contextlib

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from libs.messaging.envelope import context_subjects, stream_name
from libs.messaging.key_directory import bucket_name

CONTEXTS = ("gate", "executor", "reputation", "ops", "gateway")
DUPLICATE_WINDOW_SECONDS = 120.0
MAX_AGE_SECONDS = 7 * 24 * 3600.0


def stream_config(root: str, context: str) -> StreamConfig:
    return StreamConfig(
        name=stream_name(root, context),
        subjects=[context_subjects(root, context)],
        retention=RetentionPolicy.LIMITS,  # consumers come and go; the stream keeps history for replay
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=MAX_AGE_SECONDS,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


async def ensure_streams(js: JetStreamContext, root: str, contexts: tuple[str, ...] = CONTEXTS) -> None:
    for context in contexts:
        config = stream_config(root, context)
        try:
            await js.stream_info(stream_name(root, context))
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)


async def delete_streams(js: JetStreamContext, root: str, contexts: tuple[str, ...] = CONTEXTS) -> None:
    """For tests and benches: remove a root's streams, and its API key directory (every service on the root
    made it)."""
    for context in contexts:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream_name(root, context))
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(f"KV_{bucket_name(root)}")
