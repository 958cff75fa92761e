"""The key directory's writer: a durable consumer of ops' own key events that puts each key's current
record (read from ops' database, not from the event) into the bucket every service authenticates from."""

from __future__ import annotations

import logging

from ops_service.application.api_keys import PublishKeyRecordHandler
from ops_service.domain.ports import OpsUnitOfWork
from whatlead.events.v1 import ops_events_pb2

log = logging.getLogger(__name__)


class KeyDirectoryWriter:
    """For ApiKeyCreated and ApiKeyRevoked alike: whichever arrives (late, twice, out of order), the
    directory gets the state the key has now."""

    def __init__(self, publish: PublishKeyRecordHandler) -> None:
        self._publish = publish

    async def __call__(
        self, event: ops_events_pb2.ApiKeyCreated | ops_events_pb2.ApiKeyRevoked, uow: OpsUnitOfWork
    ) -> None:
        if await self._publish(uow, event.api_key.id) is None:
            log.warning("key event for a key ops does not have", extra={"api_key_id": event.api_key.id})
