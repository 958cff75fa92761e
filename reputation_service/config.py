from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field, SecretStr, model_validator

from libs.config import ConsumingServiceSettings, Port, settings_config
from libs.processes import ProcessesSettings
from libs.providers.settings import ProviderEndpointSettings


class ReputationSettings(ConsumingServiceSettings, ProviderEndpointSettings, ProcessesSettings):
    """Environment variables prefixed REPUTATION_ (e.g. REPUTATION_DATABASE_URL).

    Onboarding (ConnectInstance) calls each instance's provider at REPUTATION_<PROVIDER>_URL with
    REPUTATION_<PROVIDER>_API_KEY (wuzapi: REPUTATION_WUZAPI_URL and REPUTATION_WUZAPI_TOKENS), as the
    Executor does (libs/providers/settings.py)."""

    model_config = settings_config("REPUTATION_")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/reputation"
    grpc_port: Port = 50053
    metrics_port: Port = 9103
    # The largest legitimate request, an UpdateInstance with every field at its limit, is under 4 KiB.
    grpc_max_receive_bytes: int = Field(default=16 * 1024, ge=1024, le=4 * 1024 * 1024)
    # Each instance's webhook secret is derived from it (libs.webhooks), as the gateway does, so the registry
    # can hand it to whoever configures the provider; the previous one while a rotation is under way. Empty:
    # no secrets are handed out.
    webhook_master_key: SecretStr = SecretStr("")
    webhook_previous_master_key: SecretStr = SecretStr("")

    # Signals (docs/adr/0044-reputation-signals.md). The raw log is kept this long after a fact was
    # recorded: longer than the streams keep events (7 days), so a late report of a fact is still known.
    signal_retention_days: float = Field(default=8.0, ge=1, le=90)
    # Minute buckets make windows exact to the minute; past this age windows start on the hour.
    minute_bucket_retention_hours: float = Field(default=8 * 24, ge=2, le=31 * 24)
    # Hour buckets serve windows up to 30 days.
    hour_bucket_retention_days: float = Field(default=35.0, ge=31, le=400)
    # A send with no delivery, read or failure this long after it is a soft failure (ack_timeouts).
    ack_timeout_seconds: float = Field(default=900.0, gt=0, le=6 * 3600)
    prune_interval_seconds: float = Field(default=300.0, gt=0, le=86400)
    prune_batch_size: int = Field(default=5000, ge=100, le=100_000)
    # Events fetched and applied per transaction by each signal consumer.
    signal_batch_size: int = Field(default=256, ge=1, le=4096)

    # Reputation (docs/adr/0044-reputation-signals.md, "Evaluation"). An instance with new signals is
    # evaluated at most once per debounce; the evaluator looks for due instances every poll.
    evaluation_debounce_seconds: float = Field(default=10.0, ge=0, le=3600)
    evaluation_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # The periodic pass: ends cooldowns, and evaluates numbers not evaluated for `aging_interval_seconds`.
    reputation_pass_interval_seconds: float = Field(default=60.0, gt=0, le=3600)
    aging_interval_seconds: float = Field(default=3600.0, ge=1, le=7 * 86400)
    evaluation_batch_size: int = Field(default=100, ge=1, le=5000)
    # Thresholds (reputation_service/application/reputation_policy.py): overrides of the evaluation's
    # defaults for every organization, and per organization on top of those, e.g.
    # REPUTATION_ORGANIZATION_THRESHOLDS='{"org-1": {"timelock_cooldowns": [600, 3600]}}'.
    thresholds: dict[str, Any] = Field(default_factory=dict)
    organization_thresholds: dict[str, dict[str, Any]] = Field(default_factory=dict)

    # Onboarding (ADR 0049). Where providers reach the gateway's webhooks, as they see it (a public URL in
    # production); empty: ConnectInstance is FAILED_PRECONDITION.
    gateway_public_url: str = ""
    provider_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    http_connections: int = Field(default=50, ge=1, le=1000)
    # The status check: sessions waiting for a scan are asked this often, the others (connected,
    # disconnected) at the slower interval; at most a batch of each per pass.
    status_check_interval_seconds: float = Field(default=15.0, gt=0, le=3600)
    status_check_idle_interval_seconds: float = Field(default=900.0, gt=0, le=86400)
    status_check_batch_size: int = Field(default=50, ge=1, le=1000)
    # WatchInstance: while a QR code is required, the provider is asked for the current one this often
    # (wuzapi sends no QR webhook); a watcher further behind than its buffer is cut off.
    watch_qr_refresh_seconds: float = Field(default=3.0, gt=0, le=60)
    watch_buffer: int = Field(default=32, ge=1, le=4096)

    @model_validator(mode="after")
    def _minute_buckets_outlive_the_ack_timeout(self) -> ReputationSettings:
        if self.minute_horizon < self.ack_timeout + timedelta(hours=1):
            raise ValueError("minute_bucket_retention_hours must exceed the ack timeout by an hour")
        if self.gateway_public_url and not self.gateway_public_url.startswith(("http://", "https://")):
            raise ValueError("gateway_public_url must start with http:// or https://")
        return self

    @property
    def minute_horizon(self) -> timedelta:
        return timedelta(hours=self.minute_bucket_retention_hours)

    @property
    def ack_timeout(self) -> timedelta:
        return timedelta(seconds=self.ack_timeout_seconds)

    # The warm-up planner submits each planned message to the Gate at this address (host:port); empty: the
    # planner does not run (GetWarmupPlan still answers, with no plan).
    gate_address: str = ""
    gate_deadline_seconds: float = Field(default=5.0, gt=0, le=60)
    warmup_interval_seconds: float = Field(default=15.0, gt=0, le=3600)  # due messages are submitted
    warmup_plan_interval_seconds: float = Field(default=300.0, gt=0, le=86400)  # the day's plans are made
    # Until the planner reads the evaluated phase: a number is NEWBORN this many days after registration.
    warmup_newborn_days: int = Field(default=7, ge=0, le=365)
