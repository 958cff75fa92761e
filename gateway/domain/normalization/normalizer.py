"""One normalizer for every provider: picks the provider's module (the simulator speaks WAHA)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.domain.normalization import evolution, turbozap, waha, wuzapi
from gateway.domain.normalization.reading import NormalizedWebhook
from libs.seedwork.shared_kernel import Provider

_Normalize = Callable[[Provider, str, Mapping[str, str], bytes], NormalizedWebhook]

_BY_PROVIDER: dict[Provider, _Normalize] = {
    Provider.EVOLUTION: evolution.normalize,
    Provider.WAHA: waha.normalize,
    Provider.SIMULATOR: waha.normalize,
    Provider.WUZAPI: wuzapi.normalize,
    Provider.TURBOZAP: turbozap.normalize,
}


class ProviderNormalizer:
    """The `WebhookNormalizer` port: a pure function of the provider, our instance id (from the URL the
    signature proved), the headers (lower-case names) and the raw body. Raises MalformedWebhook for a
    body that is not the provider's JSON (or wuzapi's form); never anything else."""

    def normalize(
        self, provider: Provider, instance_id: str, headers: Mapping[str, str], body: bytes
    ) -> NormalizedWebhook:
        return _BY_PROVIDER[provider](provider, instance_id, headers, body)
