"""`whatlead instances webhook <id>`: what the operator pastes into the provider, and that it is what the
gateway then accepts."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.infrastructure.verification import SecretVerifier
from libs.cli import instances
from libs.cli.main import main
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
    with pytest.raises(SystemExit, match="WHATLEAD_WEBHOOK_MASTER_KEY"):
        main(["instances", "webhook", INSTANCE_ID])
    assert registry.calls == []
    assert capsys.readouterr().out == ""
