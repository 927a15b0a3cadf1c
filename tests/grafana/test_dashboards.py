"""Structure of the provisioned Grafana dashboards: valid JSON with stable uids, unique
panel ids, a layout inside Grafana's 24 columns with no overlap, every panel described
and querying through the ``${datasource}`` variable, and only documented metrics."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.grafana.dashboard_queries import (
    DATASOURCE_REF,
    EXTERNAL_METRICS,
    all_panels,
    dashboard_files,
    documented_metrics,
    documented_name,
    load_dashboard,
    metric_names,
    targets,
    variable_queries,
)

EXPECTED = {
    "scorer-slo.json": "triage-scorer-slo",
    "model-behaviour.json": "triage-model-behaviour",
    "drift-retraining.json": "triage-drift-retraining",
}
GRID_COLUMNS = 24
# Panels that only display text or group others: no query, hence no datasource.
NO_QUERY_TYPES = {"row", "text"}


def test_the_three_dashboards_exist_with_stable_uids() -> None:
    found = {path.name: load_dashboard(path)["uid"] for path in dashboard_files()}
    assert found == EXPECTED


@pytest.fixture(params=sorted(EXPECTED), ids=lambda name: name.removesuffix(".json"))
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    path = Path(__file__).resolve().parents[2] / "grafana" / "dashboards" / request.param
    return load_dashboard(path)


def test_dashboard_metadata(dashboard: dict[str, Any]) -> None:
    # Provisioned dashboards: no database id, a schema Grafana 10 and 11 read as is.
    assert dashboard["id"] is None
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["title"].startswith("Accident triage / ")
    assert "accident-triage" in dashboard["tags"]
    assert dashboard["description"].strip()
    assert len(dashboard["uid"]) <= 40


def test_datasource_variable(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    assert datasource.get("current") in ({}, None), "a saved current value pins an instance"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE_REF, variable["name"]


def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = Counter(panel["id"] for panel in all_panels(dashboard))
    duplicates = [panel_id for panel_id, count in ids.items() if count > 1]
    assert not duplicates
    assert all(isinstance(panel_id, int) and panel_id > 0 for panel_id in ids)


def test_grid_positions_fit_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    occupied: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
        assert x >= 0 and y >= 0 and w >= 1 and h >= 1, panel["title"]
        assert x + w <= GRID_COLUMNS, f"{panel['title']}: past column {GRID_COLUMNS}"
        for column in range(x, x + w):
            for row in range(y, y + h):
                other = occupied.setdefault((column, row), panel["title"])
                assert other == panel["title"], f"{panel['title']} overlaps {other}"


def test_every_panel_is_described(dashboard: dict[str, Any]) -> None:
    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["title"].strip()
        assert len(panel.get("description", "").strip()) >= 40, (
            f"{panel['title']}: say what the panel shows and what a bad value means"
        )


def test_every_query_goes_through_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in all_panels(dashboard):
        if panel["type"] in NO_QUERY_TYPES:
            assert not panel.get("targets"), panel["title"]
            continue
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"{panel['title']}: duplicate refId"
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE_REF) == DATASOURCE_REF, panel["title"]
            assert target["expr"].strip(), panel["title"]


def _datasource_references(node: Any) -> list[Any]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append(value)
            found.extend(_datasource_references(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_datasource_references(item))
    return found


def test_no_hard_coded_datasource_anywhere(dashboard: dict[str, Any]) -> None:
    builtin_annotations = {"type": "grafana", "uid": "-- Grafana --"}
    for reference in _datasource_references(dashboard):
        assert reference in (DATASOURCE_REF, builtin_annotations), reference


def test_every_metric_is_documented(dashboard: dict[str, Any]) -> None:
    documented = documented_metrics()
    expressions = [(t.name, t.expr) for t in targets(dashboard)]
    expressions += [(f"variable {name}", query) for name, query in variable_queries(dashboard)]
    for where, expr in expressions:
        names = {documented_name(name, documented) for name in metric_names(expr)}
        assert names, f"{where}: no metric found in {expr!r}"
        unknown = names - documented.keys() - EXTERNAL_METRICS
        assert not unknown, f"{where}: {sorted(unknown)} not in docs/metrics.md"


def test_every_documented_metric_is_on_a_dashboard() -> None:
    documented = documented_metrics()
    shown = {
        documented_name(name, documented)
        for path in dashboard_files()
        for target in targets(load_dashboard(path))
        for name in metric_names(target.expr)
    }
    assert set(documented) - shown == set()


def test_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, handler) (rate(http_request_duration_seconds_bucket"
        '{job="scorer", pod=~"$pod"}[$__rate_interval]))) > 1e-9 and on (namespace) '
        "(time() - max(triage_drift_last_success_timestamp_seconds offset 5m)) or vector(0)"
    )
    assert metric_names(expr) == {
        "http_request_duration_seconds_bucket",
        "triage_drift_last_success_timestamp_seconds",
    }
    assert documented_name("http_request_duration_seconds_bucket", documented_metrics()) == (
        "http_request_duration_seconds"
    )
