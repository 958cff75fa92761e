"""Each instance's webhook secret, derived from a master key: the gateway checks a webhook against it
without storing any secret per instance, and the registry hands it to whoever configures the provider.

secret = hex(HMAC-SHA256(master key, "whatlead-webhook:" + instance id)). A master key being rotated keeps
its predecessor valid (the gateway accepts both) until every provider has the new secrets (ADR 0041).

The header names below are what the gateway checks and what `whatlead instances webhook` tells the operator
to configure, so both read them from here.
"""

from __future__ import annotations

import hashlib
import hmac

_CONTEXT = b"whatlead-webhook:"

# Signed by the provider itself (the secret is its HMAC key).
WAHA_SIGNATURE_HEADER = "X-Webhook-Hmac"
WAHA_ALGORITHM_HEADER = "X-Webhook-Hmac-Algorithm"
WUZAPI_SIGNATURE_HEADER = "x-hmac-signature"
# Evolution with a `jwt_key` (the secret): an HS256 JWT per event.
EVOLUTION_JWT_HEADER = "Authorization"
# Where a provider only sends static headers (TurboZap; Evolution without `jwt_key`): the secret itself.
# Our own name, so it can never clash with a header the provider sends for another reason.
STATIC_SECRET_HEADER = "X-WhatLead-Webhook-Secret"


def webhook_secret(master_key: bytes, instance_id: str) -> str:
    """The secret a provider signs (or sends) with when it posts webhooks for `instance_id`: 64 hex
    characters, long enough for every provider (wuzapi asks for at least 32)."""
    if not master_key:
        raise ValueError("the webhook master key is empty")
    return hmac.new(master_key, _CONTEXT + instance_id.encode(), hashlib.sha256).hexdigest()


def webhook_url(gateway_url: str, provider: str, instance_id: str) -> str:
    """Where a provider posts an instance's webhooks: the gateway's route for it (`provider` lower case:
    waha, wuzapi, evolution, turbozap, simulator)."""
    return f"{gateway_url.rstrip('/')}/webhooks/{provider}/{instance_id}"
