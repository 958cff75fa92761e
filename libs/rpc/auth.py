"""Who is calling: the `authorization: Bearer <secret>` of a call's metadata, checked without any remote call.

Two kinds of caller (docs/security.md): an organization's API key, found by its public prefix in the
process's key table and checked by hash in constant time, and the deployment's service credential
(`WHATLEAD_SERVICE_TOKEN`), compared in constant time. Anything else authenticates nobody; the reason is
never told to the caller (it would help guessing) nor logged with the secret."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

from libs.rpc.keys import KeyTable
from libs.seedwork.access import Principal
from libs.seedwork.api_keys import parse_key, same_hash

AUTHORIZATION = "authorization"
BEARER = "Bearer "

SERVICE = Principal.service()


class Authenticator:
    """`keys`: the key table a directory watcher keeps current. `service_tokens`: the deployment's service
    credential (two while it is being rotated); none refuses every call that presents one (a process
    started without it)."""

    def __init__(self, keys: KeyTable, service_tokens: str | Iterable[str] | None) -> None:
        self.keys = keys
        if isinstance(service_tokens, str):
            service_tokens = [service_tokens]
        # Compared as hashes: compare_digest then compares equal lengths, so not even the length leaks.
        self._service_digests = [
            hashlib.sha256(token.encode()).digest() for token in service_tokens or () if token
        ]

    def authenticate(self, metadata: Iterable[tuple[str, Any]] | None) -> Principal | None:
        """The caller the metadata proves, or None."""
        credential = bearer(metadata)
        if credential is None:
            return None
        presented = parse_key(credential)
        if presented is not None and (record := self.keys.get(presented.prefix)) is not None:
            if not record.revoked and same_hash(presented.sha256, record.sha256):
                return record.principal
            return None
        # Not a key of the table (a service credential may look like one): the service credential, or no one.
        digest = hashlib.sha256(credential.encode()).digest()
        # Every accepted token is compared, so the time taken does not tell which one matched.
        matches = [hmac.compare_digest(digest, accepted) for accepted in self._service_digests]
        return SERVICE if any(matches) else None


def bearer(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The secret of the call's `authorization: Bearer <secret>`, if it has exactly that shape."""
    for key, value in metadata or ():
        if key == AUTHORIZATION:
            if isinstance(value, str) and value.startswith(BEARER):
                return value[len(BEARER) :]
            return None
    return None
