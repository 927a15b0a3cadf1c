"""What the chart tests share: where the chart is, its scenarios, and a rendered
release with the lookups every test needs (objects by kind, pod specs, containers)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "accident-triage"
# The dashboards and alert rules live in the chart; the repository's grafana/ links here.
GRAFANA = CHART / "files" / "grafana"
GRAFANA_LINK = ROOT / "grafana"
RELEASE = "triage"
NAMESPACE = "triage-ns"
SCENARIOS = sorted(
    p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml")
)
# The newest Kubernetes the chart is validated against; the oldest is the chart's
# kubeVersion, so the validated range is the one the chart claims.
NEWEST_KUBERNETES = (1, 33)
# Custom resources of the Prometheus Operator: no schema in kubernetes-validate.
CRD_KINDS = frozenset({"ServiceMonitor", "PrometheusRule"})
# The only cluster-scoped kinds the chart renders: the retrain admission policy
# (admissionregistration.k8s.io/v1, served from Kubernetes 1.30).
CLUSTER_SCOPED_KINDS = frozenset({"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"})
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"})


def chart_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def chart_app_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


def oldest_kubernetes() -> tuple[int, int]:
    """The minor the chart's kubeVersion starts at (">=1.30.0-0" -> (1, 30))."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    found = re.fullmatch(r">=\s*v?(\d+)\.(\d+)(\.\d+)?(-0)?", str(chart["kubeVersion"]).strip())
    assert found, f"kubeVersion {chart['kubeVersion']!r}: expected a '>=X.Y.Z-0' lower bound"
    return int(found.group(1)), int(found.group(2))


KUBERNETES_VERSIONS = tuple(
    f"1.{minor}" for minor in range(oldest_kubernetes()[1], NEWEST_KUBERNETES[1] + 1)
)


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


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    """A rendered Secret's data, base64-decoded."""
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's environment by variable name (each entry as rendered)."""
    return {e["name"]: e for e in container.get("env", [])}


def env_values(container: dict[str, Any]) -> dict[str, Any]:
    """A container's plain environment values (None for valueFrom variables)."""
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def image_ref(values: dict[str, Any], image: dict[str, Any]) -> str:
    """What the chart should render for an image value: [registry/]repository:tag or
    @digest, global.imageRegistry replacing every image's registry, the chart's
    appVersion when the tag is empty."""
    registry = (values.get("global") or {}).get("imageRegistry") or image.get("registry")
    repository = (
        f"{registry.rstrip('/')}/{image['repository']}" if registry else image["repository"]
    )
    if image.get("digest"):
        return f"{repository}@{image['digest']}"
    return f"{repository}:{image.get('tag') or chart_app_version()}"
