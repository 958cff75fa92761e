from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator

from gate_service.domain.policies import ContactPolicy, GatePolicies, WarmupPhase, phase_policies_with
from libs.config import ConsumingServiceSettings, settings_config
from libs.processes import ProcessesSettings
from libs.seedwork.errors import InvalidArgument


class GateSettings(ConsumingServiceSettings, ProcessesSettings):
    """Environment variables prefixed GATE_ (e.g. GATE_DATABASE_URL, GATE_REDIS_URL)."""

    model_config = settings_config("GATE_")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/whatlead_gate"
    grpc_port: int = 50051
    # The largest legitimate request is a SubmitIntent with a 4,096-character text (up to 16 KiB of UTF-8)
    # and every other field at its limit: about 18 KiB. 64 KiB leaves room for new fields.
    grpc_max_receive_bytes: int = Field(default=64 * 1024, ge=1024, le=4 * 1024 * 1024)
    metrics_port: int = 9101
    # Rate windows, shared by every replica.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_key_prefix: str = Field(default="whatlead:gate:", max_length=64)
    # A Redis that lost the windows gets them rebuilt from the approved intents (ADR 0013) after this
    # pause, so that slots taken just before the loss are committed (milliseconds) and counted.
    rate_rebuild_settle_seconds: float = Field(default=0.5, ge=0, le=10)
    # Projection rebuild sources at start-up; empty = skip (events still keep the projections fresh).
    reputation_addr: str = ""
    ops_addr: str = ""
    rebuild_deadline_seconds: float = Field(default=10.0, gt=0)
    # Validity of an intent when the client gives none, and the longest it may ask for (also how far ahead
    # `not_before` may be). gate.proto refuses a not_before beyond 72 h: this may lower it, not raise it.
    default_validity_seconds: float = Field(default=4 * 3600, gt=0)
    max_validity_seconds: float = Field(default=72 * 3600, gt=0, le=72 * 3600)
    # Policies (documented defaults in gate_service/README.md).
    phase_policies: str = ""  # JSON: {"STABLE": {"per_minute": 30, "min_interval_seconds": 2}, ...}
    unevaluated_phase: WarmupPhase = WarmupPhase.INTERACTING
    contact_min_gap_seconds: float = Field(default=6.0, ge=0)
    contact_hourly_cap: int = Field(default=4, ge=0)
    shortlist_size: int = Field(default=8, ge=1, le=64)
    # An intent that finds no instance at all waits this long for the projection to catch up with the
    # registry (an instance registered a moment ago) before it is BLOCKED; 0 = BLOCKED at once.
    projection_grace_seconds: float = Field(default=2.0, ge=0, le=60)
    # Workers. Replicas share the durable consumers (same names); tests isolate with their own prefix.
    consumer_durable_prefix: str = Field(default="gate", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    # The consumer of the executor's MessageSent/MessageFailed gathers this long after a fetch that did not
    # fill a batch, so at light load a few share one transaction (they are on no message's path).
    execution_reports_linger_seconds: float = Field(default=0.1, ge=0, le=5)
    scheduler_interval_seconds: float = Field(default=0.5, gt=0)
    scheduler_batch_size: int = Field(default=100, ge=1, le=1000)
    projection_refresh_seconds: float = Field(default=2.0, gt=0)
    write_batch_size: int = Field(default=256, ge=1, le=1000)
    # Events leave this long after a commit at most: one relay pass then serves many commits. At 100
    # intents/s, 0.03 s (about three decisions a pass) costs the Gate ~0.3 ms of CPU per decision less than
    # 0.01 s (one a pass) and adds ~20 ms to approved→job created; under load passes fill either way.
    relay_wake_delay_seconds: float = Field(default=0.03, ge=0, le=1)
    # The Gate's hot path batches concurrent calls; more acceptors let more of them in at once (ADR 0011).
    grpc_acceptors: int = Field(default=16, ge=1, le=64)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("phase_policies")
    @classmethod
    def _valid_policies(cls, value: str) -> str:
        if value:
            try:
                parsed: Any = json.loads(value)
                if not isinstance(parsed, dict):
                    raise ValueError("must be a JSON object of phase -> overrides")
                phase_policies_with(parsed)
            except (json.JSONDecodeError, InvalidArgument, ValueError, TypeError) as exc:
                raise ValueError(f"invalid phase policies: {exc}") from None
        return value

    def policies(self) -> GatePolicies:
        return GatePolicies(
            phases=phase_policies_with(json.loads(self.phase_policies) if self.phase_policies else {}),
            contact=ContactPolicy(
                min_gap=timedelta(seconds=self.contact_min_gap_seconds), per_hour=self.contact_hourly_cap
            ),
            unevaluated_phase=self.unevaluated_phase,
            shortlist_size=self.shortlist_size,
            projection_grace=timedelta(seconds=self.projection_grace_seconds),
        )
