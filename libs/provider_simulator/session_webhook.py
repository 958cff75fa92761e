"""Point one session's webhooks at a URL, signed with a secret: what WAHA's `PUT /api/sessions/{session}`
does, through the real `WahaProvider`, so it works against the simulator and a real WAHA alike.

    python -m libs.provider_simulator.session_webhook --simulator http://127.0.0.1:8090 --api-key K \\
        --session sales-03 --url http://127.0.0.1:8080/webhooks/waha/<instance id>
    # the secret comes from --secret or, better (not in `ps`), SIMULATOR_SESSION_WEBHOOK_SECRET

Callers with their own event loop (a CLI's `--apply`) use `apply_session_webhook(...)`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import aiohttp

from libs.providers import ProviderError, WahaProvider
from libs.providers.waha import WEBHOOK_EVENTS

SECRET_ENV = "SIMULATOR_SESSION_WEBHOOK_SECRET"
_TIMEOUT_S = 10.0


async def apply_session_webhook(
    base_url: str,
    api_key: str,
    session: str,
    *,
    url: str,
    secret: str,
    events: Sequence[str] = WEBHOOK_EVENTS,
) -> None:
    """Make `session`'s events go to `url`, signed `X-Webhook-Hmac` with `secret` (raises ProviderError)."""
    async with aiohttp.ClientSession() as http:
        waha = WahaProvider(base_url=base_url, api_key=api_key, session=http, timeout=_TIMEOUT_S)
        await waha.set_session_webhook(session, url=url, hmac_key=secret, events=events)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m libs.provider_simulator.session_webhook",
        description="Point a WAHA (or simulator) session's webhooks at a URL, signed with a secret.",
    )
    parser.add_argument("--simulator", required=True, help="base URL of the simulator or WAHA")
    parser.add_argument("--api-key", default=os.environ.get("SIMULATOR_API_KEY", ""), help="X-Api-Key")
    parser.add_argument("--session", required=True, help="the session (WhatLead's instance ref)")
    parser.add_argument("--url", required=True, help="where the session's webhooks go")
    parser.add_argument("--secret", default=None, help=f"HMAC key (default: ${SECRET_ENV})")
    parser.add_argument("--events", default=",".join(WEBHOOK_EVENTS), help="comma-separated WAHA events")
    args = parser.parse_args(argv)
    secret = args.secret if args.secret is not None else os.environ.get(SECRET_ENV, "")
    if not secret:
        parser.exit(2, f"a secret is required: --secret or ${SECRET_ENV}\n")
    events = [event.strip() for event in args.events.split(",") if event.strip()]
    try:
        asyncio.run(
            apply_session_webhook(
                args.simulator, args.api_key, args.session, url=args.url, secret=secret, events=events
            )
        )
    except ProviderError as exc:  # never echoes the secret: errors carry codes and short hints only
        print(f"could not set the webhook of session {args.session}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"session {args.session}: webhooks -> {args.url} ({', '.join(events)})")


if __name__ == "__main__":
    main()
