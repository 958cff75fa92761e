from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from libs.config import ConsumingServiceSettings, Port, settings_config
from libs.seedwork.shared_kernel import Provider


class ExecutorSettings(ConsumingServiceSettings):
    """Environment variables prefixed EXECUTOR_ (e.g. EXECUTOR_DATABASE_URL, EXECUTOR_WAHA_URL).

    Each provider the executor may send through needs its base URL and key: EXECUTOR_<PROVIDER>_URL and
    EXECUTOR_<PROVIDER>_API_KEY for EVOLUTION, WAHA, TURBOZAP and SIMULATOR (the built-in simulator).
    wuzapi authenticates each instance with its own user token: EXECUTOR_WUZAPI_URL plus
    EXECUTOR_WUZAPI_TOKENS='{"<instance ref>": "<token>", ...}'. Keys are secrets: never printed.
    """

    model_config = settings_config("EXECUTOR_")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/whatlead_executor"
    grpc_port: Port = 50052
    metrics_port: Port = 9102
    # Its requests are ids, a page token and an actor: under 2 KiB at their limits.
    grpc_max_receive_bytes: int = Field(default=16 * 1024, ge=1024, le=4 * 1024 * 1024)

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

    workers: int = Field(default=4, ge=1, le=256)  # claim loops in this process
    batch_size: int = Field(default=32, ge=1, le=1000)  # jobs one worker claims and sends concurrently
    # An idle worker's look for due jobs that nothing in this process announced (a retry's backoff ending,
    # another replica's jobs); jobs created or released here reach a worker at once (IdleWorkers).
    poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    lease_seconds: float = Field(default=30.0, gt=0)
    provider_timeout_seconds: float = Field(default=20.0, gt=0)  # below the lease: a call never outlives it
    http_connections: int = Field(default=200, ge=1)
    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_base_seconds: float = Field(default=2.0, gt=0)
    backoff_factor: float = Field(default=4.0, ge=1)
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    backoff_jitter: float = Field(default=0.2, ge=0, lt=1)
    pause_recheck_seconds: float = Field(default=60.0, gt=0)
    reconcile_interval_seconds: float = Field(default=2.0, gt=0)
    kill_switch_refresh_seconds: float = Field(default=0.5, gt=0, le=60)
    # Health probes of every projected instance whose provider offers one (0: off); at most
    # `probe_concurrency` calls at once per replica, each bounded by the provider timeout.
    probe_interval_seconds: float = Field(default=60.0, ge=0)
    probe_concurrency: int = Field(default=8, ge=1, le=256)
    # A reach-out time-lock (463) whose end nobody reported holds the instance's jobs this long.
    timelock_assumed_seconds: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _coherent(self) -> ExecutorSettings:
        if self.provider_timeout_seconds >= self.lease_seconds:
            raise ValueError("provider_timeout_seconds must be below lease_seconds")
        for name, url in self.endpoint_urls().items():
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(f"{name.lower()}_url must start with http:// or https://")
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
        return {
            (Provider.WUZAPI, ref): (self.wuzapi_url, token.get_secret_value())
            for ref, token in self.wuzapi_tokens.items()
        }
