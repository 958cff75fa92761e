"""Proves a webhook came from the instance's provider before a byte of its body is parsed (ADR 0041).

Every instance's secret is `libs.webhooks.webhook_secret(master key, instance id)`, derived per call, so
the gateway stores no secret per instance; the previous master key is also tried while one is rotated.
How each provider proves it knows the secret:

    WAHA, simulator   X-Webhook-Hmac: hex HMAC-SHA512 of the raw body (X-Webhook-Hmac-Algorithm: sha512)
    wuzapi            x-hmac-signature: hex HMAC-SHA256 of the raw body (JSON or form mode alike)
    Evolution         Authorization: Bearer <HS256 JWT signed with the secret, its `jwt_key`>,
                      or, run without `jwt_key`, X-WhatLead-Webhook-Secret: <secret>
    TurboZap          X-WhatLead-Webhook-Secret: <secret>

Every comparison is `hmac.compare_digest`. Evolution mints one token per event, valid 10 minutes, reuses it
for every retry and never retries after a 401, so a validly signed token stays good for the retry horizon
after it was issued (`iat`); replays inside it are stopped by de-duplication, not here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from gateway.application.ports import SignatureRejected
from libs.seedwork.shared_kernel import Provider
from libs.webhooks import (
    EVOLUTION_JWT_HEADER,
    STATIC_SECRET_HEADER,
    WAHA_ALGORITHM_HEADER,
    WAHA_SIGNATURE_HEADER,
    WUZAPI_SIGNATURE_HEADER,
    webhook_secret,
)

# Evolution 2.3.6 (webhook.controller.ts) with its defaults: 10 attempts, delays min(5 s * 2^(n-1), 300 s)
# with +-20 % jitter (at most 6+12+24+48+96+192+360*3 = 1458 s) and a 30 s timeout on each of the first 9
# attempts (270 s): the last retry leaves at most 1728 s (28.8 min) after the token was minted.
EVOLUTION_RETRY_HORIZON = timedelta(minutes=30)

_WAHA_HEADER = WAHA_SIGNATURE_HEADER.lower()
_WAHA_ALGORITHM = WAHA_ALGORITHM_HEADER.lower()
_WUZAPI_HEADER = WUZAPI_SIGNATURE_HEADER.lower()
_AUTHORIZATION = EVOLUTION_JWT_HEADER.lower()
_STATIC_HEADER = STATIC_SECRET_HEADER.lower()

_SHA512_HEX = re.compile(r"[0-9a-fA-F]{128}")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
# header.payload.signature, each unpadded base64url; Evolution's tokens are about 200 characters.
_COMPACT_JWT = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_MAX_TOKEN_LENGTH = 4096

Sign = Callable[[bytes], bytes]
"""What the provider computes with the instance's secret (as bytes), to compare with what it sent."""


class SecretVerifier:
    """The `WebhookVerifier`: one check per provider, each against the secret of the current master key
    and then of the previous one."""

    def __init__(
        self,
        master_key: bytes,
        previous_master_key: bytes | None,
        evolution_retry_horizon: timedelta = EVOLUTION_RETRY_HORIZON,
    ) -> None:
        if not master_key:
            raise ValueError("the webhook master key is empty")
        self._master_keys = (master_key,) if not previous_master_key else (master_key, previous_master_key)
        self._horizon_seconds = evolution_retry_horizon.total_seconds()
        self._checks: dict[Provider, Callable[[str, Mapping[str, str], bytes, datetime], None]] = {
            Provider.WAHA: self._waha,
            Provider.SIMULATOR: self._waha,
            Provider.WUZAPI: self._wuzapi,
            Provider.EVOLUTION: self._evolution,
            Provider.TURBOZAP: self._static,
        }

    def verify(
        self, provider: Provider, instance_id: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> None:
        self._checks[provider](instance_id, headers, body, now)

    def _waha(self, instance_id: str, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        algorithm = headers.get(_WAHA_ALGORITHM)
        if algorithm is not None and algorithm.strip().lower() != "sha512":
            raise SignatureRejected("algorithm")
        given = _hex_signature(headers.get(_WAHA_HEADER), _SHA512_HEX)
        self._match(instance_id, given, lambda secret: hmac.digest(secret, body, hashlib.sha512))

    def _wuzapi(self, instance_id: str, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        given = _hex_signature(headers.get(_WUZAPI_HEADER), _SHA256_HEX)
        self._match(instance_id, given, lambda secret: hmac.digest(secret, body, hashlib.sha256))

    def _static(self, instance_id: str, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        given = headers.get(_STATIC_HEADER)
        if not given:
            raise SignatureRejected("missing")
        self._match(instance_id, given.strip().encode("utf-8", "replace"), lambda secret: secret)

    def _evolution(self, instance_id: str, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        authorization = headers.get(_AUTHORIZATION)
        if authorization is None:
            self._static(instance_id, headers, body, now)
            return
        signing_input, signature, payload = _parse_hs256_token(authorization)
        self._match(instance_id, signature, lambda secret: hmac.digest(secret, signing_input, hashlib.sha256))
        # Signed with the instance's secret: only now are its claims worth reading.
        issued_at, expires_at = _evolution_claims(payload)
        if now.timestamp() > max(expires_at, issued_at + self._horizon_seconds):
            raise SignatureRejected("expired")

    def _match(self, instance_id: str, given: bytes, sign: Sign) -> None:
        for master_key in self._master_keys:
            secret = webhook_secret(master_key, instance_id).encode()
            if hmac.compare_digest(sign(secret), given):
                return
        raise SignatureRejected("mismatch")


def _hex_signature(value: str | None, shape: re.Pattern[str]) -> bytes:
    if not value:
        raise SignatureRejected("missing")
    value = value.strip()
    if not shape.fullmatch(value):
        raise SignatureRejected("malformed")
    return bytes.fromhex(value)


def _parse_hs256_token(authorization: str) -> tuple[bytes, bytes, str]:
    """A compact HS256 JWT from `Bearer <token>`: (signing input, signature, encoded payload). Only the
    small JOSE header is decoded here, to refuse any algorithm but HS256 before checking a signature."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or len(token) > _MAX_TOKEN_LENGTH:
        raise SignatureRejected("malformed")
    parts = _COMPACT_JWT.fullmatch(token)
    if parts is None:
        # `alg: none` tokens end with an empty signature: say so rather than "malformed".
        unsigned = token.count(".") == 2 and token.endswith(".")
        algorithm = _alg_of(token.partition(".")[0]) if unsigned else None
        raise SignatureRejected("algorithm" if algorithm not in (None, "HS256") else "malformed")
    encoded_header, encoded_payload, encoded_signature = parts.groups()
    algorithm = _alg_of(encoded_header)
    if algorithm is None:
        raise SignatureRejected("malformed")
    if algorithm != "HS256":
        raise SignatureRejected("algorithm")
    signature = _b64url(encoded_signature)
    if signature is None or len(signature) != hashlib.sha256().digest_size:
        raise SignatureRejected("malformed")
    return f"{encoded_header}.{encoded_payload}".encode(), signature, encoded_payload


def _alg_of(encoded_header: str) -> str | None:
    """The JOSE header's `alg`; None when the header is not a JSON object with a string `alg` or asks for
    an extension (`crit`) we do not implement."""
    raw = _b64url(encoded_header)
    if raw is None or len(raw) > 1024:
        return None
    header = _json_object(raw)
    algorithm = None if header is None or "crit" in header else header.get("alg")
    return algorithm if isinstance(algorithm, str) else None


def _evolution_claims(encoded_payload: str) -> tuple[float, float]:
    """(iat, exp) of a verified token; Evolution always sets both."""
    raw = _b64url(encoded_payload)
    claims = None if raw is None else _json_object(raw)
    if claims is None:
        raise SignatureRejected("malformed")
    return _time_claim(claims.get("iat")), _time_claim(claims.get("exp"))


def _time_claim(value: object) -> float:
    """A NumericDate: a finite number of seconds (JSON also allows booleans, NaN and Infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SignatureRejected("malformed")
    return float(value)


def _b64url(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _json_object(raw: bytes) -> dict[str, object] | None:
    try:
        value = json.loads(raw)
    except ValueError:  # also UnicodeDecodeError
        return None
    return value if isinstance(value, dict) else None
