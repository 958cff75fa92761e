"""The stack file: where a running `make run` (deploy/local) says its endpoints are, so the CLI talks to that
stack whatever its port offset or data folder, and not to another one on the default ports.

`make run` writes `<data folder>/stack.json` at start and removes it on a clean stop:

    {"pid": 4242, "port_offset": 0,
     "endpoints": {"gate": "127.0.0.1:50051", "executor": "127.0.0.1:50052",
                   "reputation": "127.0.0.1:50053", "ops": "127.0.0.1:50054",
                   "nats": "nats://127.0.0.1:4322", "gateway": "http://127.0.0.1:8080",
                   "simulator": "http://127.0.0.1:8090"}}

A file whose process is gone (a stack killed without its clean stop) is ignored, and so is one of another
port offset than the reader's WHATLEAD_LOCAL_PORT_OFFSET, when that is set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "stack.json"


@dataclass(frozen=True)
class LocalStack:
    path: Path
    pid: int
    port_offset: int
    endpoints: Mapping[str, str]


def write(data: Path, port_offset: int, endpoints: Mapping[str, str]) -> Path:
    """Say where this process's stack is (atomically: a reader never sees half a file)."""
    data.mkdir(parents=True, exist_ok=True)
    path = data / FILE_NAME
    staging = path.with_name(f".{FILE_NAME}.{os.getpid()}")
    content = {"pid": os.getpid(), "port_offset": port_offset, "endpoints": dict(endpoints)}
    staging.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    staging.replace(path)
    return path


def remove(data: Path) -> None:
    """Remove the file if it is still this process's (a later stack may have written its own)."""
    path = data / FILE_NAME
    found = _load(path)
    if found is not None and found.pid == os.getpid():
        path.unlink(missing_ok=True)


def read(data: Path, port_offset: int | None = None) -> LocalStack | None:
    """The running stack of this data folder, or None: no file, an unreadable one, a stack that is gone,
    or (`port_offset` given) a stack on another offset."""
    found = _load(data / FILE_NAME)
    if found is None or not _running(found.pid):
        return None
    if port_offset is not None and found.port_offset != port_offset:
        return None
    return found


def _load(path: Path) -> LocalStack | None:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        endpoints = content["endpoints"]
        return LocalStack(
            path,
            int(content["pid"]),
            int(content["port_offset"]),
            {str(name): str(value) for name, value in endpoints.items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it is there
        return True
    return True
