"""`buf breaking` (as CI runs it on protos/) refuses an incompatible change of a contract and accepts none.

buf comes from tools/buf (`npm ci --prefix tools/buf`), or $BUF, or PATH; without it the test is skipped
locally and fails under CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, unavailable

LOCAL_BUF = ROOT / "tools" / "buf" / "node_modules" / ".bin" / "buf"
RENUMBERED_FROM = "  string idempotency_key = 9;\n"  # MessageIntent's, in gate.proto
RENUMBERED_TO = "  string idempotency_key = 19;\n"


@pytest.fixture
def buf() -> str:
    candidates = [os.environ.get("BUF", ""), str(LOCAL_BUF), shutil.which("buf") or ""]
    found = next((c for c in candidates if c and Path(c).is_file()), None)
    if found is None:
        unavailable("buf", FileNotFoundError("not in tools/buf, $BUF or PATH: npm ci --prefix tools/buf"))
    assert found is not None
    return found


def contracts_copy(into: Path) -> Path:
    """The repository's buf.yaml and protos/ (the .proto files only) under `into`."""
    into.mkdir()
    shutil.copy(ROOT / "buf.yaml", into / "buf.yaml")
    shutil.copytree(
        ROOT / "protos", into / "protos", ignore=shutil.ignore_patterns("*.py", "*.pyi", "__pycache__")
    )
    return into


def breaking(buf: str, changed: Path, original: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [buf, "breaking", str(changed), "--against", str(original)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_renumbered_field_is_a_breaking_change(buf: str, tmp_path: Path) -> None:
    original = contracts_copy(tmp_path / "original")
    changed = contracts_copy(tmp_path / "changed")
    gate = changed / "protos" / "whatlead" / "gate" / "v1" / "gate.proto"
    source = gate.read_text()
    assert source.count(RENUMBERED_FROM) == 1
    gate.write_text(source.replace(RENUMBERED_FROM, RENUMBERED_TO))

    result = breaking(buf, changed, original)

    assert result.returncode != 0
    report = result.stdout + result.stderr
    assert "whatlead/gate/v1/gate.proto" in report
    assert '"idempotency_key"' in report and '"MessageIntent"' in report


def test_unchanged_contracts_pass(buf: str, tmp_path: Path) -> None:
    original = contracts_copy(tmp_path / "original")
    same = contracts_copy(tmp_path / "same")

    result = breaking(buf, same, original)

    assert result.returncode == 0, result.stdout + result.stderr
