"""`whatlead instances webhook <id>`: what the operator pastes into the provider, and that it is what the
gateway then accepts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.infrastructure.verification import SecretVerifier
from libs.cli import instances, webhooks
from libs.cli.main import main
from libs.provider_simulator import ProviderSimulator, run_simulator
from libs.seedwork.shared_kernel import Provider
from libs.webhooks import webhook_secret
from whatlead.common.v1 import common_pb2
from whatlead.reputation.v1 import reputation_pb2

MASTER_KEY = "a-master-key-only-this-test-knows"
INSTANCE_ID = "0193a5d4-5c1e-7b2a-9f00-00000000000a"


@dataclass
class FakeRegistry:
    """The reputation service's GetInstance, answering one instance."""

    provider: common_pb2.Provider.ValueType
    calls: list[reputation_pb2.GetInstanceRequest] = field(default_factory=list)

    def GetInstance(
        self, request: reputation_pb2.GetInstanceRequest, timeout: float
    ) -> reputation_pb2.GetInstanceResponse:
        self.calls.append(request)
        instance = reputation_pb2.Instance(
            id=request.instance_id, provider=self.provider, provider_instance_ref="sales-1"
        )
        return reputation_pb2.GetInstanceResponse(instance=instance)


def run_webhook_command(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    provider: common_pb2.Provider.ValueType,
    *extra: str,
    org: str = "demo",
) -> tuple[str, FakeRegistry]:
    registry = FakeRegistry(provider)
    monkeypatch.setattr(instances, "reputation", lambda: registry)
    monkeypatch.setenv("WHATLEAD_WEBHOOK_MASTER_KEY", MASTER_KEY)
    assert main(["--org", org, "instances", "webhook", INSTANCE_ID, *extra]) == 0
    return capsys.readouterr().out, registry


def field_of(output: str, name: str) -> str:
    match = re.search(rf"^{name}\s+(\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


@pytest.mark.parametrize(
    ("provider", "route", "expected"),
    [
        (common_pb2.PROVIDER_WAHA, "waha", ['"hmac": {"key": "{secret}"}', "X-Webhook-Hmac (HMAC-SHA512"]),
        (common_pb2.PROVIDER_SIMULATOR, "simulator", ['"hmac": {"key": "{secret}"}', "X-Webhook-Hmac"]),
        (common_pb2.PROVIDER_WUZAPI, "wuzapi", ['{"hmac_key": "{secret}"}', "x-hmac-signature (HMAC-SHA256"]),
        (
            common_pb2.PROVIDER_EVOLUTION,
            "evolution",
            [
                "POST /webhook/set/sales-1",
                '"url": "{url}", "headers": {"jwt_key": "{secret}"}',
                '"X-WhatLead-Webhook-Secret": "{secret}"',
            ],
        ),
        (common_pb2.PROVIDER_TURBOZAP, "turbozap", ["  X-WhatLead-Webhook-Secret: {secret}"]),
    ],
)
def test_prints_the_url_the_secret_and_where_each_provider_takes_them(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    provider: common_pb2.Provider.ValueType,
    route: str,
    expected: list[str],
) -> None:
    output, registry = run_webhook_command(
        monkeypatch, capsys, provider, "--gateway-url", "https://hooks.example.com/", org="acme"
    )
    secret = webhook_secret(MASTER_KEY.encode(), INSTANCE_ID)
    url = f"https://hooks.example.com/webhooks/{route}/{INSTANCE_ID}"
    assert field_of(output, "url") == url
    assert field_of(output, "secret") == secret
    for fragment in expected:
        assert fragment.replace("{secret}", secret).replace("{url}", url) in output
    assert MASTER_KEY not in output
    assert [(c.organization_id, c.instance_id) for c in registry.calls] == [("acme", INSTANCE_ID)]


def test_the_printed_secret_is_the_one_the_gateway_verifies_against(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output, _ = run_webhook_command(monkeypatch, capsys, common_pb2.PROVIDER_WAHA)
    body = b'{"event":"message.ack","payload":{"id":"3EB0C4","ack":3}}'
    # What WAHA does with the key pasted into its session config.
    signature = hmac.new(field_of(output, "secret").encode(), body, hashlib.sha512).hexdigest()
    gateway = SecretVerifier(MASTER_KEY.encode(), None)
    gateway.verify(Provider.WAHA, INSTANCE_ID, {"x-webhook-hmac": signature}, body, datetime.now(UTC))


def test_the_gateway_url_defaults_to_the_environment_then_to_the_local_stack(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WHATLEAD_GATEWAY_URL", "https://gw.internal:8443")
    output, _ = run_webhook_command(monkeypatch, capsys, common_pb2.PROVIDER_WUZAPI)
    assert field_of(output, "url") == f"https://gw.internal:8443/webhooks/wuzapi/{INSTANCE_ID}"
    monkeypatch.delenv("WHATLEAD_GATEWAY_URL")
    output, _ = run_webhook_command(monkeypatch, capsys, common_pb2.PROVIDER_WUZAPI)
    assert field_of(output, "url") == f"http://127.0.0.1:8080/webhooks/wuzapi/{INSTANCE_ID}"


def test_a_key_file_wins_over_the_environment_and_its_newline_is_not_part_of_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key_file = tmp_path / "webhook-master-key"
    key_file.write_text("the-key-in-the-file\n")
    output, _ = run_webhook_command(
        monkeypatch, capsys, common_pb2.PROVIDER_TURBOZAP, "--master-key-file", str(key_file)
    )
    assert field_of(output, "secret") == webhook_secret(b"the-key-in-the-file", INSTANCE_ID)
    assert "the-key-in-the-file" not in output


def test_without_a_master_key_it_says_how_to_give_one_and_asks_nobody(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = FakeRegistry(common_pb2.PROVIDER_WAHA)
    monkeypatch.setattr(instances, "reputation", lambda: registry)
    monkeypatch.delenv("WHATLEAD_WEBHOOK_MASTER_KEY", raising=False)
    monkeypatch.setattr(webhooks, "LOCAL_MASTER_KEY_FILE", Path("no-such-folder") / "webhook-master-key")
    with pytest.raises(SystemExit, match="WHATLEAD_WEBHOOK_MASTER_KEY"):
        main(["instances", "webhook", INSTANCE_ID])
    assert registry.calls == []
    assert capsys.readouterr().out == ""


def test_without_a_key_given_it_takes_the_one_make_run_keeps(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    local = tmp_path / "webhook-master-key"
    local.write_text("the-local-stack-key\n")
    monkeypatch.setattr(webhooks, "LOCAL_MASTER_KEY_FILE", local)
    monkeypatch.setattr(instances, "reputation", lambda: FakeRegistry(common_pb2.PROVIDER_SIMULATOR))
    monkeypatch.delenv("WHATLEAD_WEBHOOK_MASTER_KEY", raising=False)

    assert main(["instances", "webhook", INSTANCE_ID]) == 0

    assert field_of(capsys.readouterr().out, "secret") == webhook_secret(b"the-local-stack-key", INSTANCE_ID)


@contextlib.contextmanager
def simulator_in_a_thread(api_key: str) -> Iterator[ProviderSimulator]:
    """The provider simulator on a loop of its own: the command runs its own loop, as a user runs it."""
    started: queue.Queue[ProviderSimulator] = queue.Queue()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with run_simulator(api_key=api_key) as simulator:
            started.put(simulator)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        yield started.get(timeout=10)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


def test_apply_points_the_simulator_session_at_the_gateway_with_the_instance_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with simulator_in_a_thread("sim-key") as simulator:
        output, _ = run_webhook_command(
            monkeypatch,
            capsys,
            common_pb2.PROVIDER_SIMULATOR,
            "--apply",
            "--provider-url",
            simulator.base_url,
            "--provider-api-key",
            "sim-key",
        )
        [target] = simulator.webhook_targets(simulator.sessions["sales-1"])

    assert target.url == f"http://127.0.0.1:8080/webhooks/simulator/{INSTANCE_ID}"
    assert target.hmac_key == webhook_secret(MASTER_KEY.encode(), INSTANCE_ID)
    assert "now posts its webhooks to" in output and target.hmac_key not in output


def test_apply_refuses_a_provider_whose_webhook_it_cannot_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(instances, "reputation", lambda: FakeRegistry(common_pb2.PROVIDER_WUZAPI))
    monkeypatch.setenv("WHATLEAD_WEBHOOK_MASTER_KEY", MASTER_KEY)
    with pytest.raises(SystemExit, match="WAHA sessions only"):
        main(["instances", "webhook", INSTANCE_ID, "--apply"])
    assert capsys.readouterr().out == ""
