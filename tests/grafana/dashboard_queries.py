"""Reading the Grafana dashboards, the alert rules and docs/metrics.md for the tests of
``tests/grafana``: the panels and their PromQL, the metric names an expression uses, and
the metrics the stack documents. A plain module; import it as
``tests.grafana.dashboard_queries``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
ALERTS_FILE = ROOT / "grafana" / "prometheus" / "alerts.yaml"
ALERT_TESTS_FILE = ROOT / "grafana" / "prometheus" / "alerts.test.yaml"
METRICS_DOC = ROOT / "docs" / "metrics.md"
RUNBOOK = ROOT / "docs" / "runbook.md"

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
"""How every panel and target names its datasource: through the dashboard variable."""

# Metrics that come from outside the stack. Listed one by one (no prefix matching) so a
# typo in a dashboard is caught like any other unknown name.
KUBE_STATE_METRICS = frozenset(
    {
        "kube_horizontalpodautoscaler_status_desired_replicas",
        "kube_horizontalpodautoscaler_status_current_replicas",
        "kube_horizontalpodautoscaler_spec_max_replicas",
        "kube_deployment_status_replicas_available",
    }
)
CADVISOR = frozenset({"container_cpu_usage_seconds_total", "container_memory_working_set_bytes"})
PROMETHEUS_BUILTINS = frozenset({"up"})
PUSHGATEWAY_BUILTINS = frozenset({"push_time_seconds", "push_failure_time_seconds"})
EXTERNAL_METRICS = KUBE_STATE_METRICS | CADVISOR | PROMETHEUS_BUILTINS | PUSHGATEWAY_BUILTINS

_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "atan2"}
)
_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


@dataclass(frozen=True)
class Target:
    dashboard: str
    """The dashboard's uid."""
    panel_id: int
    panel_title: str
    panel_type: str
    ref_id: str
    expr: str
    instant: bool

    @property
    def name(self) -> str:
        return f"{self.dashboard} / {self.panel_title} [{self.ref_id}]"


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def all_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def targets(dashboard: Mapping[str, Any]) -> Iterator[Target]:
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("hide"):
                continue
            yield Target(
                dashboard=dashboard["uid"],
                panel_id=panel["id"],
                panel_title=panel["title"],
                panel_type=panel["type"],
                ref_id=target["refId"],
                expr=target["expr"],
                instant=bool(target.get("instant")),
            )


def variable_queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(variable name, PromQL selector) of the dashboard's query variables; the selector
    is the first argument of ``label_values(...)``."""
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"\s*label_values\((.*),\s*[a-zA-Z_]\w*\)\s*", text, re.DOTALL)
        if match is None:
            raise ValueError(f"variable {variable['name']}: unsupported query {text!r}")
        yield variable["name"], match.group(1)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (histogram series keep their
    ``_bucket``/``_count``/``_sum`` suffix; see :func:`documented_name`)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        token = match.group()
        if token in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(token)
    return names


def documented_metrics() -> dict[str, str]:
    """Metric name -> type, from the tables of docs/metrics.md."""
    metrics: dict[str, str] = {}
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*([^|]+?)\s*\|", line)
        if match:
            metrics[match.group(1)] = match.group(2)
    return metrics


def documented_name(name: str, documented: Mapping[str, str]) -> str:
    """The documented metric a series name belongs to: ``x_bucket`` -> ``x`` when ``x``
    is a documented histogram; any other name unchanged."""
    for suffix in _HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and documented.get(base, "").startswith("histogram"):
            return base
    return name


def load_alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub generates for a document's headings: lower case, punctuation
    other than '-' and '_' removed, spaces turned into '-'."""
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match and not in_code:
            text = match.group(1).strip().lower()
            text = re.sub(r"[^\w\- ]", "", text)
            anchors.add(text.replace(" ", "-"))
    return anchors
