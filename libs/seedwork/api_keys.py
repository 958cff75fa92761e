"""API key secrets: how they look, how they are made and how a presented one is checked.

A key is `wl_<prefix>_<secret>`: the prefix (8 characters) is public, stored and shown to recognise the
key; the secret is 32 random bytes. Only the SHA-256 of the whole key is kept. A slow password hash would
buy nothing here: a 256-bit random secret cannot be guessed from its hash, and the check runs on every
call. The prefix finds the stored hash; the hashes are then compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCHEME = "wl"
PREFIX_LENGTH = 8
_SECRET_BYTES = 32
_PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    secret: str  # shown once, never stored
    prefix: str
    sha256: bytes


@dataclass(frozen=True, slots=True)
class PresentedKey:
    prefix: str
    sha256: bytes


def issue_key() -> IssuedKey:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    body = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).rstrip(b"=").decode()
    secret = f"{SCHEME}_{prefix}_{body}"
    return IssuedKey(secret=secret, prefix=prefix, sha256=digest(secret))


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_key(secret: str) -> PresentedKey | None:
    """The prefix and hash of a presented key; None when it is not shaped like one of ours."""
    scheme, _, rest = secret.partition("_")
    prefix, _, body = rest.partition("_")
    if scheme != SCHEME or len(prefix) != PREFIX_LENGTH or not body:
        return None
    return PresentedKey(prefix=prefix, sha256=digest(secret))


def same_hash(presented: bytes, stored: bytes) -> bool:
    """Constant time, so the time a refusal takes says nothing about how much of a hash matched."""
    return hmac.compare_digest(presented, stored)
