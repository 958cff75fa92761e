"""Simulator settings: command-line flags, each defaulting to a `SIMULATOR_*` environment variable."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

ENV_PREFIX = "SIMULATOR_"


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorSettings:
    """How the simulator listens, where its webhooks go, and how the simulated phones behave.

    Ack delays are measured from the accepted send; a negative delay turns that ack off. Without a
    `webhook_url` no webhooks are sent at all (acks then stay at SERVER in lookups).
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = ""  # empty: no X-Api-Key check
    webhook_url: str | None = None
    webhook_secret: str = ""  # empty: webhooks are not signed
    server_ack_ms: int = 50
    device_ack_ms: int = 250
    read_ack_ms: int = 1000
    read_probability: float = 1.0
    reply_probability: float = 0.0
    reply_delay_ms: int = 1500
    webhook_attempts: int = 4
    webhook_retry_base_ms: int = 200
    webhook_concurrency: int = 16
    webhook_timeout_s: float = 5.0
    webhook_queue_size: int = 200_000
    qr_rotate_s: float = 20.0  # a session waiting for a scan shows a new QR this often, as WhatsApp does
    max_messages: int = 2_000_000  # stored for lookups; the oldest go first (the ledger keeps everything)
    seed: int | None = None
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append("port must be 0..65535")
        for name in ("read_probability", "reply_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be between 0 and 1")
        for name in ("webhook_attempts", "webhook_concurrency", "webhook_queue_size", "max_messages"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.qr_rotate_s <= 0:
            problems.append("qr_rotate_s must be positive")
        if self.webhook_timeout_s <= 0 or self.webhook_retry_base_ms < 0 or self.reply_delay_ms < 0:
            problems.append("webhook timeout, retry base and reply delay must be positive")
        if self.webhook_url is not None and not self.webhook_url.startswith(("http://", "https://")):
            problems.append("webhook_url must start with http:// or https://")
        if self.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            problems.append("log_level must be DEBUG, INFO, WARNING or ERROR")
        if problems:
            raise ValueError("; ".join(problems))


def _optional_int(value: str) -> int | None:
    return None if value == "" else int(value)


def _optional_str(value: str) -> str | None:
    return value or None


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "port": int,
    "server_ack_ms": int,
    "device_ack_ms": int,
    "read_ack_ms": int,
    "reply_delay_ms": int,
    "webhook_attempts": int,
    "webhook_retry_base_ms": int,
    "webhook_concurrency": int,
    "webhook_queue_size": int,
    "max_messages": int,
    "read_probability": float,
    "reply_probability": float,
    "webhook_timeout_s": float,
    "qr_rotate_s": float,
    "seed": _optional_int,
    "webhook_url": _optional_str,
    "log_level": str.upper,
}


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> SimulatorSettings:
    """Flags first, then `SIMULATOR_<NAME>` variables, then defaults. Exits with status 2 on a bad value."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="python -m libs.provider_simulator",
        description="A WhatsApp provider simulator speaking WAHA's HTTP API, with a ledger of every send.",
    )
    for spec in fields(SimulatorSettings):
        flag = "--" + spec.name.replace("_", "-")
        parser.add_argument(flag, dest=spec.name, default=None, help=f"(env {ENV_PREFIX}{spec.name.upper()})")
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    for spec in fields(SimulatorSettings):
        raw = getattr(args, spec.name)
        source = f"--{spec.name.replace('_', '-')}"
        if raw is None:
            raw = environ.get(ENV_PREFIX + spec.name.upper())
            source = ENV_PREFIX + spec.name.upper()
        if raw is None:
            continue
        try:
            values[spec.name] = _CONVERTERS.get(spec.name, str)(raw)
        except ValueError:
            parser.exit(2, f"invalid value for {source}: {raw!r}\n")
    try:
        return SimulatorSettings(**values)
    except ValueError as exc:
        print(f"invalid simulator configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
