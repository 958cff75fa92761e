from __future__ import annotations

from pydantic import Field, model_validator

from libs.config import ConsumingServiceSettings, Port, settings_config
from libs.providers.settings import ProviderEndpointSettings


class ExecutorSettings(ConsumingServiceSettings, ProviderEndpointSettings):
    """Environment variables prefixed EXECUTOR_ (e.g. EXECUTOR_DATABASE_URL, EXECUTOR_WAHA_URL).

    Each provider the executor may send through needs its base URL and key (libs/providers/settings.py):
    EXECUTOR_<PROVIDER>_URL and EXECUTOR_<PROVIDER>_API_KEY, EXECUTOR_WUZAPI_URL plus EXECUTOR_WUZAPI_TOKENS.
    """

    model_config = settings_config("EXECUTOR_")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/whatlead_executor"
    grpc_port: Port = 50052
    metrics_port: Port = 9102
    # Its requests are ids, a page token and an actor: under 2 KiB at their limits.
    grpc_max_receive_bytes: int = Field(default=16 * 1024, ge=1024, le=4 * 1024 * 1024)

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
        return self
