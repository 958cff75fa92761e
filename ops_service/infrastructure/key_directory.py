"""The key directory (libs.messaging.key_directory) behind the application's `KeyDirectory` port."""

from __future__ import annotations

from nats.js.kv import KeyValue

from libs.messaging.key_directory import put_key
from ops_service.domain.api_key import ApiKey
from ops_service.infrastructure.proto_mapping import key_record


class JetStreamKeyDirectory:
    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket

    async def put(self, key: ApiKey) -> None:
        await put_key(self._bucket, key_record(key))
