"""The Gate's own Prometheus metrics (the shared ones live in libs)."""

from __future__ import annotations

from prometheus_client import Histogram

BATCH_SIZE = Histogram(
    "whatlead_gate_batch_size",
    "Items per coalesced batch (group commit, grouped reads, Redis script calls): 1 means nothing batched",
    ["stage"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
