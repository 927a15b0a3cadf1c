"""What the chart tests share: where the chart is, its scenarios, and a rendered
release with the lookups every test needs (objects by kind, pod specs, containers)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "accident-triage"
GRAFANA = ROOT / "grafana"
RELEASE = "triage"
NAMESPACE = "triage-ns"
SCENARIOS = sorted(
    p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml")
)
KUBERNETES_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33")
# Custom resources of the Prometheus Operator: no schema in kubernetes-validate.
CRD_KINDS = frozenset({"ServiceMonitor", "PrometheusRule"})
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"})


def chart_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def chart_app_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of a values file over the defaults (maps merge, the rest replaces)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class Rendered:
    scenario: str
    docs: list[dict[str, Any]]
    text: str
    user_values: dict[str, Any]
    values: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.values = merge(chart_values(), self.user_values)

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for doc in self.docs:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
        raise KeyError(f"{kind}/{name} not rendered in scenario {self.scenario}")

    def names(self, kind: str) -> set[str]:
        return {d["metadata"]["name"] for d in self.kinds(kind)}

    def workloads(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(object, pod spec) of every object that runs pods."""
        for doc in self.docs:
            if doc["kind"] in WORKLOAD_KINDS:
                yield doc, pod_spec(doc)

    def containers(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for doc, spec in self.workloads():
            for container in spec.get("initContainers", []) + spec["containers"]:
                yield doc, container


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    kind = doc["kind"]
    spec: dict[str, Any]
    if kind == "Pod":
        spec = doc["spec"]
    elif kind == "CronJob":
        spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    else:
        spec = doc["spec"]["template"]["spec"]
    return spec


def pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    kind = doc["kind"]
    labels: dict[str, str]
    if kind == "Pod":
        labels = doc["metadata"]["labels"]
    elif kind == "CronJob":
        labels = doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    else:
        labels = doc["spec"]["template"]["metadata"]["labels"]
    return labels


def name(component: str) -> str:
    """The rendered name of a component: "<release>-<chart>-<component>"."""
    return f"{RELEASE}-accident-triage-{component}"
