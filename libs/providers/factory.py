"""Build the adapter for an instance's provider from configuration."""

from __future__ import annotations

import aiohttp

from libs.providers.base import HttpProvider
from libs.providers.evolution import EvolutionProvider
from libs.providers.media import DEFAULT_MAX_MEDIA_BYTES
from libs.providers.port import WhatsAppProvider
from libs.providers.sessions import ProviderSessions
from libs.providers.turbozap import TurboZapProvider
from libs.providers.waha import WahaProvider
from libs.providers.wuzapi import WuzapiProvider
from libs.seedwork.shared_kernel import Provider

# The simulator speaks WAHA's wire API, so the real WAHA adapter is what talks to it.
_ADAPTERS: dict[Provider, type[HttpProvider]] = {
    Provider.EVOLUTION: EvolutionProvider,
    Provider.WAHA: WahaProvider,
    Provider.WUZAPI: WuzapiProvider,
    Provider.TURBOZAP: TurboZapProvider,
    Provider.SIMULATOR: WahaProvider,
}


def build_provider(
    provider: str,
    base_url: str,
    api_key: str,
    *,
    session: aiohttp.ClientSession,
    timeout: aiohttp.ClientTimeout | float | None = None,
    max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES,
    media_timeout: aiohttp.ClientTimeout | float | None = None,
) -> WhatsAppProvider:
    """The adapter for `provider` ("EVOLUTION", "WAHA", "WUZAPI", "TURBOZAP" or "SIMULATOR", any case).

    `session` is the process's shared session (see `create_client_session`); `timeout` overrides the
    session's per-request timeout (seconds or an aiohttp.ClientTimeout). For wuzapi, `api_key` is the
    instance's user token, so build one adapter per wuzapi instance. `max_media_bytes` and
    `media_timeout` bound the downloads of adapters that send media inline (wuzapi; `media_timeout` None
    means the default of `libs/providers/media.py`); the others pass URLs on and ignore them.
    """
    try:
        kind = Provider(provider.upper())
    except ValueError:
        known = ", ".join(p.value for p in Provider)
        raise ValueError(f"unknown provider {provider!r}; expected one of {known}") from None
    if not base_url.startswith(("http://", "https://")):
        raise ValueError("base_url must start with http:// or https://")
    if kind is Provider.WUZAPI:
        return WuzapiProvider(
            base_url=base_url,
            api_key=api_key,
            session=session,
            timeout=timeout,
            max_media_bytes=max_media_bytes,
            media_timeout=media_timeout,
        )
    return _ADAPTERS[kind](base_url=base_url, api_key=api_key, session=session, timeout=timeout)


def build_sessions(
    provider: str,
    base_url: str,
    api_key: str,
    *,
    session: aiohttp.ClientSession,
    timeout: aiohttp.ClientTimeout | float | None = None,
) -> ProviderSessions:
    """The session port of `provider`'s adapter (the same adapter classes as `build_provider`; the
    simulator's is WAHA's). For wuzapi, `api_key` is the instance's user token, which is its session."""
    adapter = build_provider(provider, base_url, api_key, session=session, timeout=timeout)
    assert isinstance(adapter, ProviderSessions)  # every adapter implements both ports
    return adapter
