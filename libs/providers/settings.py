"""Where each provider is and the key to reach it, as every service that calls providers reads them from
its environment: <PREFIX>_<PROVIDER>_URL and <PREFIX>_<PROVIDER>_API_KEY for EVOLUTION, WAHA, TURBOZAP and
SIMULATOR; wuzapi authenticates each instance with its own user token: <PREFIX>_WUZAPI_URL plus
<PREFIX>_WUZAPI_TOKENS='{"<instance ref>": "<token>", ...}'. Keys are secrets: never printed."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, SecretStr, model_validator

from libs.seedwork.shared_kernel import Provider


class ProviderEndpointSettings(BaseModel):
    """Mixed into a service's settings (`class ExecutorSettings(ConsumingServiceSettings,
    ProviderEndpointSettings)`), which gives the prefix."""

    evolution_url: str = ""
    evolution_api_key: SecretStr = SecretStr("")
    waha_url: str = ""
    waha_api_key: SecretStr = SecretStr("")
    turbozap_url: str = ""
    turbozap_api_key: SecretStr = SecretStr("")
    simulator_url: str = ""
    simulator_api_key: SecretStr = SecretStr("")
    wuzapi_url: str = ""
    wuzapi_tokens: dict[str, SecretStr] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _endpoints_coherent(self) -> Self:
        for provider, url in self.endpoint_urls().items():
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(f"{provider.value.lower()}_url must start with http:// or https://")
        if self.wuzapi_tokens and not self.wuzapi_url:
            raise ValueError("wuzapi_tokens needs wuzapi_url")
        return self

    def endpoint_urls(self) -> dict[Provider, str]:
        return {
            Provider.EVOLUTION: self.evolution_url,
            Provider.WAHA: self.waha_url,
            Provider.TURBOZAP: self.turbozap_url,
            Provider.SIMULATOR: self.simulator_url,
            Provider.WUZAPI: self.wuzapi_url,
        }

    def endpoints(self) -> dict[Provider, tuple[str, str]]:
        """provider -> (base URL, key) for every configured provider keyed per process."""
        keys = {
            Provider.EVOLUTION: self.evolution_api_key,
            Provider.WAHA: self.waha_api_key,
            Provider.TURBOZAP: self.turbozap_api_key,
            Provider.SIMULATOR: self.simulator_api_key,
        }
        return {
            provider: (url, keys[provider].get_secret_value())
            for provider, url in self.endpoint_urls().items()
            if url and provider in keys
        }

    def instance_tokens(self) -> dict[tuple[Provider, str], tuple[str, str]]:
        """(WUZAPI, instance ref) -> (base URL, the instance's user token)."""
        return {
            (Provider.WUZAPI, ref): (self.wuzapi_url, token.get_secret_value())
            for ref, token in self.wuzapi_tokens.items()
        }
