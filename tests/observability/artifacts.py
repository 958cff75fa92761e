"""The rules and dashboards as files, read the way Prometheus and Grafana read them, for the tests here and
the end-to-end test that runs every query against a real Prometheus."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from tests.conftest import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yaml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yaml"))
RUNBOOKS = PROMETHEUS / "runbooks.md"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
SERVICES = ("gate", "executor", "reputation", "ops", "gateway")  # the scrape jobs


def promtool() -> str | None:
    return shutil.which("promtool")


def rules() -> list[dict[str, Any]]:
    """Every rule of every group of every rule file."""
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "record" in rule]


def runbook_anchors() -> set[str]:
    """The anchors GitHub makes of runbooks.md's headings (lower case, spaces to dashes)."""
    headings = re.findall(r"^#+ (.+)$", RUNBOOKS.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in DASHBOARDS}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    expr: str  # as written in the dashboard, with Grafana's variables

    def concrete(self, variables: dict[str, str]) -> str:
        """The query as Grafana sends it: its variables replaced by values."""
        expr = self.expr
        for name, value in sorted(variables.items(), key=lambda item: -len(item[0])):
            expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
        return expr


def panel_queries() -> list[PanelQuery]:
    return [
        PanelQuery(name, panel["title"], target["expr"])
        for name, dashboard in dashboards().items()
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def constants(dashboard: dict[str, Any]) -> dict[str, str]:
    """The dashboard's constant variables (a service dashboard's job) by name."""
    return {
        variable["name"]: variable["query"]
        for variable in dashboard.get("templating", {}).get("list", [])
        if variable["type"] == "constant"
    }
