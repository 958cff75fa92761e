from __future__ import annotations

from libs.config import Port, ServiceSettings, settings_config


class NotesSettings(ServiceSettings):
    """Environment variables prefixed NOTES_, read like every service's settings."""

    model_config = settings_config("NOTES_")

    grpc_port: Port = 50099
