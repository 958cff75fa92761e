"""Which adapter serves which provider: built once from settings, sharing one HTTP session."""

from __future__ import annotations

import aiohttp

from libs.providers import build_provider
from libs.providers.directory import AdapterDirectory, Endpoints, InstanceTokens
from libs.providers.port import WhatsAppProvider

# Send adapters by provider; wuzapi authenticates per instance (user token), so it has one per instance.
ProviderDirectory = AdapterDirectory[WhatsAppProvider]


def provider_directory(
    endpoints: Endpoints,
    *,
    session: aiohttp.ClientSession,
    timeout_seconds: float,
    instance_tokens: InstanceTokens | None = None,
) -> ProviderDirectory:
    return ProviderDirectory.built(
        lambda provider, url, key: build_provider(
            provider.value, url, key, session=session, timeout=timeout_seconds
        ),
        endpoints,
        instance_tokens,
    )
