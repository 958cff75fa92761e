from __future__ import annotations

import io
import json
import logging

import pytest

from executor_service.config import ExecutorSettings
from gate_service.config import GateSettings
from libs.logs import JsonFormatter
from libs.messaging.consumer import Redelivery
from tests.libs.notes.config import NotesSettings


def test_settings_are_read_from_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTES_GRPC_PORT", "6001")
    monkeypatch.setenv("GATE_GRPC_PORT", "7001")  # another service's variable is not ours

    assert NotesSettings.load().grpc_port == 6001


def test_a_bad_setting_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOTES_GRPC_PORT", "70000")
    monkeypatch.setenv("NOTES_DATABASE_URL", "mysql://nope")

    with pytest.raises(SystemExit) as exited:
        NotesSettings.load()

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "NOTES_GRPC_PORT" in err and "NOTES_DATABASE_URL" in err


def test_each_consumer_takes_the_ack_wait_of_its_stream_else_the_service_wide_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATE_CONSUMER_ACK_WAIT_SECONDS", "4")
    monkeypatch.setenv("GATE_CONSUMER_ACK_WAIT_OVERRIDES", '{"executor": 2.5}')

    settings = GateSettings.load()

    assert Redelivery.of(settings, "executor").ack_wait == 2.5
    assert Redelivery.of(settings, "reputation").ack_wait == 4
    assert Redelivery.of(settings, "reputation").heartbeat == pytest.approx(4 / 3)


def test_an_ack_wait_out_of_range_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EXECUTOR_CONSUMER_ACK_WAIT_OVERRIDES", '{"gate": 0}')

    with pytest.raises(SystemExit):
        ExecutorSettings.load()

    assert "EXECUTOR_CONSUMER_ACK_WAIT_OVERRIDES" in capsys.readouterr().err


def log_line(message: str, **extra: object) -> dict[str, object]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("test.redaction")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning(message, extra=extra)
    return json.loads(stream.getvalue())


def test_logs_are_json_and_never_print_secrets():
    line = log_line(
        "calling nats://user:hunter2@broker:4222 with apikey=abc123",
        api_key="k-123",
        webhook_body={"apikey": "evo-secret", "data": {}},
        headers={"Authorization": "Bearer t0ken"},
        instance_id="i-1",
    )
    text = json.dumps(line)

    assert line["level"] == "WARNING" and line["service"] == "test" and line["instance_id"] == "i-1"
    for secret in ("hunter2", "abc123", "k-123", "evo-secret", "t0ken"):
        assert secret not in text
