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
    # /v1/realtime: ops' WatchIntents at this address (host:port), called with each socket's own key (the
    # gateway holds no credential). Empty: every socket is closed 1011 (no live stream on this gateway).
    ops_address: str = ""
    # Frames read from ops ahead of the socket; past them ops is read only as fast as the socket drains.
    realtime_queue_frames: int = Field(default=32, ge=1, le=1024)
    # A socket that has not taken a frame for this long is closed 4429 with the position to resume from.
    realtime_stall_seconds: float = Field(default=10.0, gt=0, le=300)
    # A socket lives at most this long (the WatchIntents call's deadline), then is closed 1000 with the
    # position to resume from: no call is without a deadline, and long-lived sockets spread over replicas.
    realtime_max_stream_seconds: float = Field(default=3600.0, ge=1, le=86400)
    # The pages (Origin header, e.g. ["https://app.example.com"]) whose scripts may open a socket: JSON;
    # empty: any. Keys, not cookies, authenticate a socket, so a foreign page cannot act for a visitor;
    # list your own pages anyway where a proxy in front adds cookies or other ambient credentials.
    realtime_allowed_origins: frozenset[str] = frozenset()

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
