"""Every dashboard query, run by a real Prometheus against a real scorer and a real
Pushgateway: each panel's PromQL (dashboard variables substituted as Grafana would)
must return data, except the panels that need kube-state-metrics or cAdvisor, which do
not run here and are listed in :data:`SKIPPED_PANELS`. The alert rules are loaded too:
each must evaluate without error, and the drift the stand-in job reports must fire.

Set ``TRIAGE_RENDER_DASHBOARDS=<folder>`` to run a longer scenario (a few minutes of
varying traffic, a model promotion, two drift runs) and render the dashboards' panels
from it with ``python -m tools render-dashboards`` (PNG files in that folder; the committed
ones are in docs/dashboards/).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.grafana.dashboard_queries import (
    CADVISOR,
    KUBE_STATE_METRICS,
    ROOT,
    Target,
    dashboard_files,
    load_dashboard,
    metric_names,
    targets,
    variable_queries,
)
from tests.grafana.live_stack import (
    NAMESPACE,
    RATE_INTERVAL,
    RENDER_FOLDER,
    SCORER_POD,
    LiveStack,
    has_finite_value,
    instant_query,
    prometheus_api,
)

SKIPPED_PANELS: dict[tuple[str, str], str] = {
    ("triage-scorer-slo", "Replicas: HPA desired vs current (kube-state-metrics)"): (
        "needs kube-state-metrics (HPA and Deployment objects), which only a cluster has"
    ),
    ("triage-scorer-slo", "CPU per pod (cAdvisor)"): (
        "needs the kubelet's cAdvisor metrics, which only a cluster has"
    ),
    ("triage-scorer-slo", "Memory per pod (cAdvisor)"): (
        "needs the kubelet's cAdvisor metrics, which only a cluster has"
    ),
}

# What Grafana would put in place of its built-in variables for a short, recent range.
RANGE = "5m"
VARIABLES = {
    "__rate_interval": RATE_INTERVAL,
    "__interval": "2s",
    "__range": RANGE,
    "namespace": NAMESPACE,
    "pod": SCORER_POD,
}

ALL_TARGETS = [target for path in dashboard_files() for target in targets(load_dashboard(path))]


def substitute(expr: str, values: dict[str, str] = VARIABLES) -> str:
    """Replace ``$name`` and ``${name}`` as Grafana does (a name is read whole, so
    ``$__rate_interval`` is never taken for ``$__rate``)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no test value for dashboard variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)


def _external(target: Target) -> bool:
    return bool(metric_names(target.expr) & (KUBE_STATE_METRICS | CADVISOR))


def test_the_skipped_panels_are_exactly_those_on_cluster_metrics() -> None:
    external = {(t.dashboard, t.panel_title) for t in ALL_TARGETS if _external(t)}
    assert external == set(SKIPPED_PANELS)
    # A skipped panel mixes no metric of ours, which would then go untested.
    for target in ALL_TARGETS:
        if (target.dashboard, target.panel_title) in SKIPPED_PANELS:
            assert _external(target), target.name


def test_substitute() -> None:
    assert substitute('rate(x{pod=~"$pod"}[$__rate_interval]) + y[${__range}]') == (
        f'rate(x{{pod=~"{SCORER_POD}"}}[{RATE_INTERVAL}]) + y[{RANGE}]'
    )


@pytest.mark.servers
@pytest.mark.slow
def test_dashboard_variables_resolve(populated: LiveStack) -> None:
    for path in dashboard_files():
        for name, selector in variable_queries(load_dashboard(path)):
            label = {"namespace": "namespace", "pod": "pod"}[name]
            values = prometheus_api(
                populated.prometheus_url,
                f"label/{label}/values",
                **{"match[]": substitute(selector)},
            )
            assert VARIABLES[name] in values, f"{path.name}: ${name} offers {values}"


@pytest.mark.servers
@pytest.mark.slow
@pytest.mark.parametrize(
    "target", ALL_TARGETS, ids=lambda t: f"{t.dashboard}:{t.panel_id}:{t.ref_id}"
)
def test_panel_query_returns_data(populated: LiveStack, target: Target) -> None:
    reason = SKIPPED_PANELS.get((target.dashboard, target.panel_title))
    if reason is not None:
        pytest.skip(f"{target.panel_title}: {reason}")
    expr = substitute(target.expr)
    samples = instant_query(populated.prometheus_url, expr)
    assert samples, f"{target.name}: no data for\n{expr}"
    assert has_finite_value(samples), f"{target.name}: only NaN for\n{expr}\n{samples}"
    if not target.instant:
        end = time.time()
        data = prometheus_api(
            populated.prometheus_url,
            "query_range",
            query=expr,
            start=str(end - 30),
            end=str(end),
            step="2",
        )
        assert data["result"], f"{target.name}: no data over the last 30 s for\n{expr}"


@pytest.mark.servers
@pytest.mark.slow
def test_alert_rules_evaluate_and_drift_fires(populated: LiveStack) -> None:
    groups = prometheus_api(populated.prometheus_url, "rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 13
    broken = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert not broken
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alerts = prometheus_api(populated.prometheus_url, "alerts")["alerts"]
        firing = {alert["labels"]["alertname"] for alert in alerts if alert["state"] == "firing"}
        if "TriageDatasetDrift" in firing:
            break
        time.sleep(1)
    # The scorer is healthy and serving: none of its alerts may fire.
    healthy_scorer = {"TriageScorerDown", "TriageNoModelLoaded", "TriageScorerHighErrorRatio"}
    assert firing & healthy_scorer == set()
    assert "TriageDatasetDrift" in firing


@pytest.mark.servers
@pytest.mark.slow
@pytest.mark.skipif(not RENDER_FOLDER, reason="set TRIAGE_RENDER_DASHBOARDS=<folder> to render")
def test_render_dashboards(populated: LiveStack) -> None:
    folder = Path(RENDER_FOLDER or ".")
    if not folder.is_absolute():
        folder = ROOT / folder
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools",
            "render-dashboards",
            "--prometheus",
            populated.prometheus_url,
            "--out",
            str(folder),
            "--start",
            str(populated.started),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(
        f"{p.stem}.png" for p in dashboard_files()
    )
