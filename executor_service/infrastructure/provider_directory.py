"""Which adapter serves which provider: built once from settings, sharing one HTTP session."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from libs.providers import build_provider
from libs.providers.port import WhatsAppProvider
from libs.seedwork.shared_kernel import Provider


class ProviderDirectory:
    """Adapters by provider; wuzapi authenticates per instance (user token), so it has one per instance."""

    def __init__(
        self,
        adapters: Mapping[Provider, WhatsAppProvider],
        per_instance: Mapping[tuple[Provider, str], WhatsAppProvider] | None = None,
    ) -> None:
        self._adapters = dict(adapters)
        self._per_instance = dict(per_instance or {})

    @classmethod
    def from_endpoints(
        cls,
        endpoints: Mapping[Provider, tuple[str, str]],
        *,
        session: aiohttp.ClientSession,
        timeout_seconds: float,
        instance_tokens: Mapping[tuple[Provider, str], tuple[str, str]] | None = None,
    ) -> ProviderDirectory:
        """`endpoints`: provider -> (base URL, API key); `instance_tokens`: (provider, instance ref) ->
        (base URL, token) for providers keyed per instance."""
        adapters = {
            provider: build_provider(provider.value, url, key, session=session, timeout=timeout_seconds)
            for provider, (url, key) in endpoints.items()
        }
        per_instance = {
            key: build_provider(key[0].value, url, token, session=session, timeout=timeout_seconds)
            for key, (url, token) in (instance_tokens or {}).items()
        }
        return cls(adapters, per_instance)

    def adapter(self, provider: Provider, instance_ref: str) -> WhatsAppProvider | None:
        return self._per_instance.get((provider, instance_ref)) or self._adapters.get(provider)

    def configured(self) -> list[Provider]:
        return sorted(set(self._adapters) | {p for p, _ in self._per_instance})
