"""Provider webhooks into canonical `ProviderEvent`s: one module per provider, each a pure function of
the body (docs/providers.md, "Webhooks: what each provider event becomes")."""

from gateway.domain.normalization.normalizer import ProviderNormalizer
from gateway.domain.normalization.reading import MalformedWebhook, NormalizedWebhook

__all__ = ["MalformedWebhook", "NormalizedWebhook", "ProviderNormalizer"]
