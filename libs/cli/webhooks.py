"""`whatlead instances webhook <id>`: the URL and secret to paste into the instance's provider, or, with
`--apply`, set on a WAHA (or simulator) session directly.

The secret is derived here, where the operator holds the webhook master key (WHATLEAD_WEBHOOK_MASTER_KEY,
--master-key-file, or the file `make run` keeps in its data folder), exactly as the gateway derives it
(ADR 0041); the master key itself is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from libs.cli.common import endpoint
from libs.provider_simulator.session_webhook import apply_session_webhook
from libs.providers import ProviderError
from libs.webhooks import (
    EVOLUTION_JWT_HEADER,
    STATIC_SECRET_HEADER,
    WAHA_SIGNATURE_HEADER,
    WUZAPI_SIGNATURE_HEADER,
    webhook_secret,
    webhook_url,
)

MASTER_KEY_ENV = "WHATLEAD_WEBHOOK_MASTER_KEY"
# What `make run` keeps (deploy/local): its master key file, its simulator's URL and API key.
LOCAL_MASTER_KEY_FILE = Path(os.environ.get("WHATLEAD_LOCAL_DATA", ".data")) / "webhook-master-key"
PROVIDER_URL_ENV = "WHATLEAD_PROVIDER_URL"
PROVIDER_API_KEY_ENV = "WHATLEAD_PROVIDER_API_KEY"
LOCAL_SIMULATOR_API_KEY = "local-simulator-key"
# Providers whose session webhook `--apply` can set (WAHA's sessions API; issue 16's onboarding does all).
APPLICABLE = ("waha", "simulator")


def master_key(key_file: str | None) -> bytes:
    """The key as the gateway reads it: the text of the file (surrounding whitespace ignored) or of the
    environment variable, as UTF-8."""
    if key_file:
        try:
            text = Path(key_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise SystemExit(f"cannot read the webhook master key file: {error.strerror}") from None
    elif MASTER_KEY_ENV in os.environ:
        text = os.environ[MASTER_KEY_ENV].strip()
    elif LOCAL_MASTER_KEY_FILE.is_file():  # `make run`'s, from the project folder
        text = LOCAL_MASTER_KEY_FILE.read_text(encoding="utf-8").strip()
    else:
        text = ""
    if not text:
        raise SystemExit(f"no webhook master key: set {MASTER_KEY_ENV} or pass --master-key-file")
    return text.encode()


def settings(
    instance_id: str, provider: str, provider_ref: str, gateway_url: str, master_key: bytes
) -> Mapping[str, str]:
    """What to give the provider, as `--output json` prints it."""
    return {
        "instance_id": instance_id,
        "provider": provider,
        "provider_instance_ref": provider_ref,
        "url": webhook_url(gateway_url, provider, instance_id),
        "secret": webhook_secret(master_key, instance_id),
    }


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
        help="the gateway's public base URL (default $WHATLEAD_GATEWAY_URL, else `make run`'s)",
    )
    command.add_argument(
        "--master-key-file",
        help=f"a file holding the webhook master key (default ${MASTER_KEY_ENV}, else `make run`'s)",
    )
    command.add_argument(
        "--apply",
        action="store_true",
        help="set the webhook on the instance's WAHA or simulator session instead of printing what to set",
    )
    command.add_argument(
        "--provider-url",
        help=f"with --apply: the provider's base URL (default ${PROVIDER_URL_ENV}, else make run's)",
    )
    command.add_argument(
        "--provider-api-key",
        default=os.environ.get(PROVIDER_API_KEY_ENV, LOCAL_SIMULATOR_API_KEY),
        help=f"with --apply: its API key (default ${PROVIDER_API_KEY_ENV} or `make run`'s simulator key)",
    )


@dataclass(frozen=True)
class Applied:
    """A session's webhook set at its provider (never its secret)."""

    instance_id: str
    provider: str
    provider_ref: str
    url: str

    def text(self) -> str:
        return (
            f"{self.provider} session {self.provider_ref} now posts its webhooks to {self.url}, "
            "signed with its secret"
        )

    def as_json(self) -> Mapping[str, str]:
        return {
            "instance_id": self.instance_id,
            "provider": self.provider,
            "provider_instance_ref": self.provider_ref,
            "url": self.url,
        }


def provider_url(given: str | None) -> str:
    """--provider-url, else WHATLEAD_PROVIDER_URL, else the simulator of the stack `make run` started."""
    return given or os.environ.get(PROVIDER_URL_ENV, "").strip() or endpoint("simulator").value


def apply(
    instance_id: str, provider: str, provider_ref: str, args: argparse.Namespace, key: bytes
) -> Applied:
    """Set the session's webhook at its provider."""
    if provider not in APPLICABLE:
        raise SystemExit(f"--apply sets WAHA sessions only; for {provider}, set what `webhook` prints")
    url = webhook_url(endpoint("gateway", args.gateway_url, "--gateway-url").value, provider, instance_id)
    try:
        asyncio.run(
            apply_session_webhook(
                provider_url(args.provider_url),
                args.provider_api_key,
                provider_ref,
                url=url,
                secret=webhook_secret(key, instance_id),
            )
        )
    except ProviderError as error:
        raise SystemExit(f"the provider refused the webhook: {error.code}") from None
    return Applied(instance_id, provider, provider_ref, url)
