"""Every service that calls providers reads where they are the same way (libs/providers/settings.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from executor_service.config import ExecutorSettings
from libs.seedwork.shared_kernel import Provider
from reputation_service.config import ReputationSettings


@pytest.mark.parametrize(
    ("settings", "prefix"), [(ExecutorSettings, "EXECUTOR_"), (ReputationSettings, "REPUTATION_")]
)
def test_each_service_reads_the_providers_under_its_own_prefix(monkeypatch, settings, prefix):
    monkeypatch.setenv(f"{prefix}SIMULATOR_URL", "http://127.0.0.1:8090")
    monkeypatch.setenv(f"{prefix}SIMULATOR_API_KEY", "sim-key")
    monkeypatch.setenv(f"{prefix}WUZAPI_URL", "http://127.0.0.1:8091")
    monkeypatch.setenv(f"{prefix}WUZAPI_TOKENS", '{"phone-1": "token-1"}')

    loaded = settings()

    assert loaded.endpoints() == {Provider.SIMULATOR: ("http://127.0.0.1:8090", "sim-key")}
    assert loaded.instance_tokens() == {(Provider.WUZAPI, "phone-1"): ("http://127.0.0.1:8091", "token-1")}
    assert "sim-key" not in repr(loaded)


@pytest.mark.parametrize("settings", [ExecutorSettings, ReputationSettings])
def test_a_provider_url_that_is_not_http_is_refused(settings):
    with pytest.raises(ValidationError, match="waha_url must start with http"):
        settings(waha_url="ftp://provider")
    with pytest.raises(ValidationError, match="wuzapi_tokens needs wuzapi_url"):
        settings(wuzapi_tokens={"phone-1": "token-1"})
