"""JSON logs on stdout, one object per line, with secrets redacted wherever they hide."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Keys whose values are never printed, whatever the caller passes in `extra`.
_SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|apikey|authorization|signature|hmac|body|cookie)", re.I
)
# Secrets that slip into free text: URLs with credentials and header-like pairs.
_URL_CREDENTIALS = re.compile(r"(\w+://)[^/\s:@]+:[^/\s@]+@")
_INLINE_SECRET = re.compile(r"((?:api[_-]?key|apikey|token|password|secret)\s*[=:]\s*)\S+", re.I)
_RESERVED = set(vars(logging.makeLogRecord({})))


def redact_text(text: str) -> str:
    return _INLINE_SECRET.sub(r"\1[REDACTED]", _URL_CREDENTIALS.sub(r"\1[REDACTED]@", text))


def _redact(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key):
        return "[REDACTED]"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact(str(k), v) for k, v in value.items()}
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "msg": redact_text(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = _redact(key, value)
        if record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter at INFO would drown the service's own lines.
    for noisy in ("sqlalchemy.engine", "nats", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
