"""Service settings from the environment, one prefix per service, read once and validated at start-up."""

from __future__ import annotations

import sys
from typing import Annotated, Self

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_TOKEN_ENV = "WHATLEAD_SERVICE_TOKEN"
# Accepted beside the service token, never presented: what lets a rotation go without a refused call
# (docs/operations.md, "Rotate secrets").
SERVICE_TOKEN_ALSO_ACCEPTED_ENV = "WHATLEAD_SERVICE_TOKEN_ALSO_ACCEPTED"
UNPREFIXED = {SERVICE_TOKEN_ENV, SERVICE_TOKEN_ALSO_ACCEPTED_ENV}
MIN_SERVICE_TOKEN_LENGTH = 32

# Use these in subclasses too: a plain `int` default there would drop the range check.
Port = Annotated[int, Field(ge=0, le=65535)]


class ProcessSettings(BaseSettings):
    """Settings every WhatLead process has: its NATS, subject root, logging and shutdown. Subclasses set
    `model_config = settings_config("GATEWAY_")`. The gateway stops here; services add the rest.

    Defaults suit a developer's machine; `make run` (deploy/local) and production set what differs.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    nats_url: str = "nats://127.0.0.1:4222"
    # First token of every subject and stream name; tests use their own to stay isolated.
    subject_root: str = Field(default="whatlead", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # The deployment's service credential (docs/security.md), one for every process, so no prefix: what
    # this process presents to the others, and accepts from them. Unset: it refuses service-only calls.
    service_token: SecretStr | None = Field(default=None, validation_alias=SERVICE_TOKEN_ENV)
    service_token_also_accepted: SecretStr | None = Field(
        default=None, validation_alias=SERVICE_TOKEN_ALSO_ACCEPTED_ENV
    )

    @field_validator("service_token", "service_token_also_accepted")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < MIN_SERVICE_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_SERVICE_TOKEN_LENGTH} characters (a random secret)")
        return value

    def service_credential(self) -> str | None:
        return self.service_token.get_secret_value() if self.service_token is not None else None

    def accepted_service_credentials(self) -> list[str]:
        """What this process accepts as the service credential: its own, and the one also accepted while a
        rotation is under way."""
        tokens = (self.service_token, self.service_token_also_accepted)
        return [token.get_secret_value() for token in tokens if token is not None]

    @field_validator("nats_url")
    @classmethod
    def _nats_scheme(cls, value: str) -> str:
        if not value.startswith(("nats://", "tls://")):
            raise ValueError("must start with nats:// or tls://")
        return value

    @classmethod
    def load(cls) -> Self:
        """Read the environment once; on a bad value print which variable is wrong and exit."""
        try:
            return cls()
        except ValidationError as exc:
            prefix = cls.model_config.get("env_prefix", "")
            lines = [f"invalid configuration for {cls.__name__}:"]
            for error in exc.errors():
                name = "_".join(str(part) for part in error["loc"]).upper()
                name = name if name in UNPREFIXED else prefix + name
                lines.append(f"  {name}: {error['msg']}")
            print("\n".join(lines), file=sys.stderr)
            raise SystemExit(2) from None


class ServiceSettings(ProcessSettings):
    """Settings every gRPC service has besides its process's: its database, gRPC server and metrics port.
    Subclasses set `model_config = settings_config("GATE_")`."""

    # PostgreSQL only (SQLAlchemy's psycopg driver). `make run` points each service at its database on the
    # embedded server; this default is a server on the developer's machine.
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/whatlead"
    grpc_host: str = "127.0.0.1"
    grpc_port: Port = 50051
    # grpc.aio servers in the process sharing the port: each accepts new calls on its own (ADR 0011).
    grpc_acceptors: int = Field(default=1, ge=1, le=64)
    # The largest request body the gRPC server reads (RESOURCE_EXHAUSTED beyond it). Each service sets its
    # own default, a few times its largest legitimate request (docs/contracts.md).
    grpc_max_receive_bytes: int = Field(default=16 * 1024, ge=1024, le=4 * 1024 * 1024)
    metrics_port: Port = 9100
    # Gauges read from the database (queued intents, jobs per state, active pauses) are read this often.
    gauges_interval_seconds: float = Field(default=15.0, gt=0, le=300)
    migrate_on_start: bool = True

    @field_validator("database_url")
    @classmethod
    def _postgresql(cls, value: str) -> str:
        if not value.startswith("postgresql+psycopg://"):
            raise ValueError(
                "must be a PostgreSQL URL for SQLAlchemy's psycopg driver: "
                "postgresql+psycopg://user[:password]@host[:port]/database"
            )
        return value


class ConsumingServiceSettings(ServiceSettings):
    """Settings of a service with durable event consumers: how soon JetStream hands on what a consumer
    fetched and did not ack, and how an event that keeps failing is retried and then parked (ADR 0030)."""

    # What a consumer that died had fetched is redelivered this long after its fetch. A batch that takes
    # longer sends progress heartbeats, so this is sized to a short batch's work, not to the longest one.
    consumer_ack_wait_seconds: float = Field(default=3.0, ge=0.5, le=300)
    # Per consumer where one needs another, keyed by the context whose stream it reads: '{"gate": 5}'.
    consumer_ack_wait_overrides: dict[str, float] = Field(default_factory=dict)
    # A failed event (alone, not a store outage) comes back after this delay...
    consumer_retry_delay_seconds: float = Field(default=1.0, gt=0, le=60)
    # ...and is parked (terminated, one WARNING, whatlead_events_parked_total) when it fails on this
    # delivery. Redeliveries after an outage count too: the number leaves room for a short one.
    consumer_max_deliveries: int = Field(default=10, ge=2, le=1000)

    @field_validator("consumer_ack_wait_overrides")
    @classmethod
    def _ack_waits_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for context, seconds in value.items():
            if not 0.5 <= seconds <= 300:
                raise ValueError(f"{context}: an ack wait must be within 0.5 and 300 seconds")
        return value

    def consumer_ack_wait(self, context: str) -> float:
        """The ack wait of the consumer of `context`'s stream."""
        return self.consumer_ack_wait_overrides.get(context, self.consumer_ack_wait_seconds)


def settings_config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", frozen=True)
