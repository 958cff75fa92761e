"""`whatlead instances register | update | list` against the running registry: the provider's version and
engine as an operator types and reads them."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from libs.cli.main import main

ORG = "org-cli"


@pytest.fixture
def whatlead(registry, monkeypatch, capsys, cli_credentials):
    """Runs `whatlead` in a thread (its gRPC calls block; this loop serves them): code, stdout, stderr."""
    monkeypatch.setenv("WHATLEAD_REPUTATION_ADDR", registry.address)
    monkeypatch.setenv("WHATLEAD_API_KEY", registry.key(ORG))

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["--org", ORG, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def test_an_instance_is_registered_with_its_providers_version_and_engine_and_listed_with_them(whatlead):
    code, out, err = await whatlead(
        "instances", "register", "--provider", "waha", "--ref", "cli-gows", "--phone", "+5511987654321",
        "--provider-version", "2026.4.3", "--provider-engine", "gows",
    )  # fmt: skip

    assert code == 0, err
    instance = json.loads(out)
    assert (instance["provider_version"], instance["provider_engine"]) == ("2026.4.3", "PROVIDER_ENGINE_GOWS")
    code, out, _ = await whatlead("instances", "list")
    [line] = [line for line in out.splitlines() if instance["id"] in line]
    assert "WAHA 2026.4.3 GOWS" in line


async def test_update_changes_only_the_options_given(whatlead):
    _, out, _ = await whatlead(
        "instances", "register", "--provider", "waha", "--ref", "cli-upgrade", "--phone", "+5511987650000",
        "--name", "Support",
    )  # fmt: skip
    instance_id = json.loads(out)["id"]

    code, out, err = await whatlead(
        "instances", "update", instance_id, "--provider-version", "2026.4.3", "--provider-engine", "noweb"
    )

    assert code == 0, err
    updated = json.loads(out)
    assert (updated["provider_version"], updated["provider_engine"]) == ("2026.4.3", "PROVIDER_ENGINE_NOWEB")
    assert updated["display_name"] == "Support" and updated["version"] == "2"
    code, out, _ = await whatlead("instances", "list")
    assert "WAHA 2026.4.3 NOWEB" in next(line for line in out.splitlines() if instance_id in line)


async def test_an_engine_outside_waha_is_refused_with_the_reason(whatlead):
    code, _, err = await whatlead(
        "instances", "register", "--provider", "evolution", "--ref", "cli-evo", "--phone", "+5511987651111",
        "--provider-engine", "gows",
    )  # fmt: skip

    assert code == 64 + grpc.StatusCode.INVALID_ARGUMENT.value[0]  # grpcurl's convention
    assert "INVALID_ARGUMENT" in err and "provider_engine: only WAHA has engines" in err


async def test_an_unknown_engine_or_an_empty_update_is_refused_before_any_call(whatlead):
    with pytest.raises(SystemExit) as unknown:
        await whatlead(
            "instances", "register", "--provider", "waha", "--ref", "cli-x", "--phone", "+5511987652222",
            "--provider-engine", "chrome",
        )  # fmt: skip
    with pytest.raises(SystemExit) as empty:
        await whatlead("instances", "update", "0193a5d4-5c1e-7b2a-9f00-00000000000a")

    assert "webjs, noweb, gows" in str(unknown.value)
    assert "nothing to change" in str(empty.value)
