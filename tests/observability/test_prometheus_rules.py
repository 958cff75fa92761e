"""The alerting and recording rules load in Prometheus (`promtool check rules`), every alert behaves as its
unit tests say (`promtool test rules`: fires when it should, silent when it should not), and every alert
tells the person paged what it is and where its runbook is. promtool comes from Debian's `prometheus`
package; without it those two tests are skipped locally and fail under CI=true."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.conftest import unavailable
from tests.observability.artifacts import (
    PROMETHEUS,
    RULE_FILES,
    RULE_TESTS,
    alerts,
    promtool,
    recording_rules,
    runbook_anchors,
)

SEVERITIES = {"critical", "warning", "info"}


@pytest.fixture
def promtool_binary() -> str:
    found = promtool()
    if found is None:
        unavailable("promtool", FileNotFoundError("not on PATH: apt-get install prometheus"))
    assert found is not None
    return found


def test_the_rule_files_load_in_prometheus(promtool_binary: str) -> None:
    assert RULE_FILES
    checked = subprocess.run(
        [promtool_binary, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_passes_its_unit_tests(promtool_binary: str) -> None:
    assert RULE_TESTS
    tested = subprocess.run(
        [promtool_binary, "test", "rules", *map(str, RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROMETHEUS,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_unit_tested_both_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {alert["alert"] for alert in alerts()}
    assert names - firing == set(), "never tested firing"
    assert names - silent == set(), "never tested silent"


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_that_exists() -> None:
    anchors = runbook_anchors()
    assert alerts()
    for alert in alerts():
        name = alert["alert"]
        assert alert.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = alert.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), name
        page, _, anchor = annotations.get("runbook_url", "").partition("#")
        assert page == "deploy/prometheus/runbooks.md", name
        assert anchor == name.lower() and anchor in anchors, f"{name}: no runbook section #{anchor}"


def test_alert_and_recording_rule_names_are_unique() -> None:
    names = [alert["alert"] for alert in alerts()]
    records = [rule["record"] for rule in recording_rules()]
    assert len(names) == len(set(names)) and len(records) == len(set(records))
    assert all(record.count(":") >= 2 for record in records), "level:metric:operations"
