"""Each instance's webhook secret, derived from a master key: the gateway checks a webhook against it
without storing any secret per instance, and the registry hands it to whoever configures the provider.

secret = hex(HMAC-SHA256(master key, "whatlead-webhook:" + instance id)). A master key being rotated keeps
its predecessor valid (the gateway accepts both) until every provider has the new secrets.
"""

from __future__ import annotations

import hashlib
import hmac

_CONTEXT = b"whatlead-webhook:"


def webhook_secret(master_key: bytes, instance_id: str) -> str:
    """The secret a provider signs (or sends) with when it posts webhooks for `instance_id`: 64 hex
    characters, long enough for every provider (wuzapi asks for at least 32)."""
    if not master_key:
        raise ValueError("the webhook master key is empty")
    return hmac.new(master_key, _CONTEXT + instance_id.encode(), hashlib.sha256).hexdigest()
