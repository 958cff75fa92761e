"""Which adapter serves which instance: one per configured provider, and one per instance for providers
that authenticate each instance with its own token (wuzapi's user token). Built once from settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from libs.seedwork.shared_kernel import Provider

Adapter = TypeVar("Adapter")

# provider -> (base URL, API key); (provider, instance ref) -> (base URL, token): libs/providers/settings.py
Endpoints = Mapping[Provider, tuple[str, str]]
InstanceTokens = Mapping[tuple[Provider, str], tuple[str, str]]


class AdapterDirectory(Generic[Adapter]):
    def __init__(
        self,
        adapters: Mapping[Provider, Adapter],
        per_instance: Mapping[tuple[Provider, str], Adapter] | None = None,
    ) -> None:
        self._adapters = dict(adapters)
        self._per_instance = dict(per_instance or {})

    @classmethod
    def built(
        cls,
        make: Callable[[Provider, str, str], Adapter],
        endpoints: Endpoints,
        instance_tokens: InstanceTokens | None = None,
    ) -> AdapterDirectory[Adapter]:
        """`make(provider, base URL, key or token)` builds each adapter."""
        return cls(
            {provider: make(provider, url, key) for provider, (url, key) in endpoints.items()},
            {ref: make(ref[0], url, token) for ref, (url, token) in (instance_tokens or {}).items()},
        )

    def adapter(self, provider: Provider, instance_ref: str) -> Adapter | None:
        return self._per_instance.get((provider, instance_ref)) or self._adapters.get(provider)

    def configured(self) -> list[Provider]:
        return sorted(set(self._adapters) | {provider for provider, _ in self._per_instance})
