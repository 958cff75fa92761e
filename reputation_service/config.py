from __future__ import annotations

from pydantic import Field, SecretStr

from libs.config import Port, ServiceSettings, settings_config


class ReputationSettings(ServiceSettings):
    """Environment variables prefixed REPUTATION_ (e.g. REPUTATION_DATABASE_URL)."""

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
