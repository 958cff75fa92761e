from __future__ import annotations

from pydantic import Field

from libs.config import ConsumingServiceSettings, Port, settings_config


class OpsSettings(ConsumingServiceSettings):
    """Environment variables prefixed OPS_ (e.g. OPS_DATABASE_URL)."""

    model_config = settings_config("OPS_")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/ops"
    grpc_port: Port = 50054
    metrics_port: Port = 9104
    # The largest legitimate request, a PauseExecution with a 1,000-character note, is under 2 KiB.
    grpc_max_receive_bytes: int = Field(default=16 * 1024, ge=1024, le=4 * 1024 * 1024)
    # Timed pauses end by themselves (every projection already treats a passed `paused_until` as active);
    # this pass records the resume, with its version and event, this often.
    expiry_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    expiry_batch_size: int = Field(default=100, ge=1, le=5000)
    # Events the timeline consumers record per transaction (each context's stream has its own consumer).
    timeline_batch_size: int = Field(default=256, ge=1, le=5000)
    # Retention of the timeline and the counters: a periodic pass deletes what is older, in batches.
    # Timeline facts, by when they occurred. At least 8 days: a fact's row is also the timeline consumers'
    # inbox entry, and the streams keep an event 7 days, so no redelivery can come after its row is gone.
    timeline_retention_days: float = Field(default=30.0, ge=8, le=3650)
    # Minute buckets serve metrics windows up to 6 hours (longer ones read hour buckets).
    minute_counters_retention_hours: float = Field(default=48.0, ge=6, le=31 * 24)
    # Hour buckets serve windows up to 30 days.
    hour_counters_retention_days: float = Field(default=400.0, ge=30, le=3650)
    prune_interval_seconds: float = Field(default=300.0, gt=0, le=86400)
    prune_batch_size: int = Field(default=5000, ge=100, le=100_000)
    # WatchIntents: changes buffered per watcher before a watcher that does not keep up is cut off (it
    # resumes from the position it was told), and recent changes the process keeps to resume from without
    # reading the stream.
    watch_buffer: int = Field(default=1024, ge=1, le=1_000_000)
    watch_ring: int = Field(default=10_000, ge=1, le=10_000_000)
