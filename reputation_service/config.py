from __future__ import annotations

from libs.config import Port, ServiceSettings, settings_config


class ReputationSettings(ServiceSettings):
    """Environment variables prefixed REPUTATION_ (e.g. REPUTATION_DATABASE_URL)."""

    model_config = settings_config("REPUTATION_")

    database_url: str = "sqlite+aiosqlite:///.data/reputation.db"
    grpc_port: Port = 50053
    metrics_port: Port = 9103
