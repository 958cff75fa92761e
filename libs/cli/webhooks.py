"""`whatlead instances webhook <id>`: the URL and secret to paste into the instance's provider.

The secret is derived here, where the operator holds the webhook master key (WHATLEAD_WEBHOOK_MASTER_KEY or
--master-key-file), exactly as the gateway derives it (ADR 0041); the master key itself is never printed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from libs.webhooks import (
    EVOLUTION_JWT_HEADER,
    STATIC_SECRET_HEADER,
    WAHA_SIGNATURE_HEADER,
    WUZAPI_SIGNATURE_HEADER,
    webhook_secret,
)

MASTER_KEY_ENV = "WHATLEAD_WEBHOOK_MASTER_KEY"
GATEWAY_URL_ENV = "WHATLEAD_GATEWAY_URL"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080"  # what `make run` starts


def master_key(key_file: str | None) -> bytes:
    """The key as the gateway reads it: the text of the file (surrounding whitespace ignored) or of the
    environment variable, as UTF-8."""
    if key_file:
        try:
            text = Path(key_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise SystemExit(f"cannot read the webhook master key file: {error.strerror}") from None
    else:
        text = os.environ.get(MASTER_KEY_ENV, "").strip()
    if not text:
        raise SystemExit(f"no webhook master key: set {MASTER_KEY_ENV} or pass --master-key-file")
    return text.encode()


def webhook_url(gateway_url: str, provider: str, instance_id: str) -> str:
    return f"{gateway_url.rstrip('/')}/webhooks/{provider}/{instance_id}"


def instructions(
    instance_id: str, provider: str, provider_ref: str, gateway_url: str, master_key: bytes
) -> str:
    """What to print for one instance; `provider` is the route's name (waha, wuzapi, ...)."""
    url = webhook_url(gateway_url, provider, instance_id)
    secret = webhook_secret(master_key, instance_id)
    lines = [
        f"instance  {instance_id}",
        f"provider  {provider} ({provider_ref})",
        f"url       {url}",
        f"secret    {secret}",
        "",
    ]
    if provider in ("waha", "simulator"):
        lines += [
            f"WAHA: PUT /api/sessions/{provider_ref} with, in config.webhooks[]:",
            f'  {{"url": "{url}", "hmac": {{"key": "{secret}"}},',
            '   "events": ["message.any", "message.ack", "message.ack.group", "session.status"]}',
            f"WAHA then signs every webhook: {WAHA_SIGNATURE_HEADER} (HMAC-SHA512 of the body).",
        ]
    elif provider == "wuzapi":
        lines += [
            "wuzapi: with the user's token,",
            f'  POST /webhook               {{"webhookURL": "{url}", "events": ["All"]}}',
            f'  POST /session/hmac/config   {{"hmac_key": "{secret}"}}',
            f"wuzapi then signs every webhook: {WUZAPI_SIGNATURE_HEADER} (HMAC-SHA256 of the body).",
        ]
    elif provider == "evolution":
        lines += [
            f"Evolution: POST /webhook/set/{provider_ref}",
            f'  {{"webhook": {{"enabled": true, "url": "{url}", "headers": {{"jwt_key": "{secret}"}},',
            '   "events": ["MESSAGES_UPSERT", "MESSAGES_UPDATE", "CONNECTION_UPDATE", "QRCODE_UPDATED"]}}',
            f"Evolution then sends {EVOLUTION_JWT_HEADER}: Bearer <a JWT signed with the secret>.",
            "Without a jwt_key, send the secret as a static header instead:",
            f'  "headers": {{"{STATIC_SECRET_HEADER}": "{secret}"}}',
        ]
    elif provider == "turbozap":
        lines += [
            f"TurboZap: set instance {provider_ref}'s webhook URL to the url above, with the custom header",
            f"  {STATIC_SECRET_HEADER}: {secret}",
        ]
    lines += ["", "Anyone with the secret can post events for this instance: keep it out of logs and chats."]
    return "\n".join(lines)


def add_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("id", help="the instance id")
    command.add_argument(
        "--gateway-url",
        default=os.environ.get(GATEWAY_URL_ENV, DEFAULT_GATEWAY_URL),
        help=f"the gateway's public base URL (default ${GATEWAY_URL_ENV} or {DEFAULT_GATEWAY_URL})",
    )
    command.add_argument(
        "--master-key-file", help=f"a file holding the webhook master key (default ${MASTER_KEY_ENV})"
    )
