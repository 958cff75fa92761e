"""The gateway's settings: environment variables prefixed GATEWAY_, read once and validated at start-up."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from libs.config import Port, ProcessSettings, settings_config

MIB = 1024 * 1024


class GatewaySettings(ProcessSettings):
    """Environment variables prefixed GATEWAY_ (e.g. GATEWAY_NATS_URL, GATEWAY_WEBHOOK_MASTER_KEY).

    The gateway has no database and no gRPC server: a process's settings (NATS, subject root, logging,
    shutdown) and its HTTP server's; metrics are served on the HTTP port, at /metrics.
    """

    model_config = settings_config("GATEWAY_")

    http_host: str = "127.0.0.1"
    http_port: Port = 8080
    # Each instance's webhook secret is derived from it (libs.webhooks); the previous one stays valid while
    # the providers are given their new secrets. Secrets: never logged, never printed by a repr.
    webhook_master_key: SecretStr = Field(min_length=32)
    webhook_previous_master_key: SecretStr = SecretStr("")
    # The largest webhook read; larger ones are refused with 413 while reading, never buffered whole.
    max_body_bytes: int = Field(default=MIB, ge=1024, le=16 * MIB)
    # How long a webhook waits for JetStream's acks before it is answered 503 (the provider retries).
    publish_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # uvicorn's in-flight and keep-alive limits.
    http_limit_concurrency: int | None = Field(default=None, ge=1)
    http_keep_alive_seconds: int = Field(default=5, ge=1, le=300)

    @field_validator("webhook_previous_master_key")
    @classmethod
    def _previous_long_enough(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value()) < 32:
            raise ValueError("must be empty or at least 32 characters")
        return value

    def master_keys(self) -> list[bytes]:
        """The keys webhook secrets may be derived from, the current one first."""
        keys = [self.webhook_master_key.get_secret_value().encode()]
        if previous := self.webhook_previous_master_key.get_secret_value():
            keys.append(previous.encode())
        return keys
