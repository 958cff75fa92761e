"""The Gate's own Prometheus metrics (the shared ones live in libs)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

BATCH_SIZE = Histogram(
    "whatlead_gate_batch_size",
    "Items per coalesced batch (group commit, grouped reads, Redis script calls): 1 means nothing batched",
    ["stage"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
REFUSED_WRITES = Counter(
    "whatlead_gate_refused_writes_total",
    "Units of work the database refused for their data (answered INVALID_ARGUMENT); their batch was split so "
    "the others were written",
)
