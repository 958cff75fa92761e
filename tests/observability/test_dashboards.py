"""The Grafana dashboards as Grafana loads them: each is what deploy/grafana/dashboards.py makes (the JSON is
not edited by hand), panel ids are unique, every target has a query, every query goes through the
`datasource` variable, and a service dashboard's `job` is one of the scrape jobs."""

from __future__ import annotations

from deploy.grafana import dashboards as generator
from tests.observability.artifacts import DASHBOARDS, SERVICES, constants, dashboards, panels

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_the_committed_json_is_what_the_generator_makes() -> None:
    committed = {path.name: path.read_text(encoding="utf-8") for path in DASHBOARDS}
    assert committed == generator.rendered(), "run `python -m deploy.grafana.dashboards`"


def test_there_is_an_overview_and_a_dashboard_per_service() -> None:
    found = dashboards()
    assert "whatlead-overview.json" in found
    assert sorted(constants(d).get("job", "") for d in found.values()) == sorted(("", *SERVICES))


def test_every_dashboard_has_unique_panel_ids_and_uid() -> None:
    found = dashboards()
    assert len({d["uid"] for d in found.values()}) == len(found)
    for name, dashboard in found.items():
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), name


def test_every_target_has_a_query_through_the_datasource_variable() -> None:
    for name, dashboard in dashboards().items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", name
        assert variables["datasource"]["query"] == "prometheus", name
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == DATASOURCE, (name, panel["title"])
            assert panel["targets"] and panel.get("description"), (name, panel["title"])
            for target in panel["targets"]:
                assert target["expr"].strip(), (name, panel["title"])
                assert target.get("datasource", DATASOURCE) == DATASOURCE, (name, panel["title"])


def test_a_service_dashboard_asks_for_its_own_job_only() -> None:
    for name, dashboard in dashboards().items():
        job = constants(dashboard).get("job")
        if job is None:
            continue
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                assert 'job="$job"' in target["expr"], (name, panel["title"], target["expr"])
