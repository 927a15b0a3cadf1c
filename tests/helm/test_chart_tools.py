"""The chart under the tools CI trusts: ``helm lint --strict``, ``kubernetes-validate
--strict`` for every Kubernetes from the chart's kubeVersion to 1.33, checkov with zero
failed checks, yamllint on k8s/ and skaffold.yaml; and skaffold.yaml kept in step
with values.yaml (the schema's: test_chart_docs.py)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helm.chart import (
    CHART,
    CRD_KINDS,
    KUBERNETES_VERSIONS,
    ROOT,
    SCENARIOS,
    Rendered,
    chart_values,
)


@pytest.mark.parametrize("scenario_name", SCENARIOS)
def test_helm_lint_strict(helm: str, scenario_name: str) -> None:
    values = CHART / "ci" / f"{scenario_name}-values.yaml"
    result = subprocess.run(
        [helm, "lint", "--strict", str(CHART), "-f", str(values)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout, result.stdout


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_kubernetes(render: Callable[..., Rendered], version: str) -> None:
    """Strict: an unknown field is an error, and so is a kind the version does not
    serve (the retrain admission policy is admissionregistration.k8s.io/v1 from 1.30
    only). ServiceMonitor and PrometheusRule are custom resources of the Prometheus
    Operator, for which kubernetes-validate has no schema; their shape is asserted in
    test_chart_manifests.py."""
    for scenario_name in SCENARIOS:
        rendered = render(scenario_name, f"--kube-version={version}.0")
        for doc in rendered.docs:
            if doc["kind"] in CRD_KINDS:
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                pytest.fail(
                    f"{scenario_name}: {doc['kind']}/{doc['metadata']['name']}: Kubernetes "
                    f"{version} serves no {doc['apiVersion']} {doc['kind']}"
                )
            except kubernetes_validate.ValidationError as error:
                pytest.fail(
                    f"{scenario_name}: {doc['kind']}/{doc['metadata']['name']} is invalid "
                    f"for Kubernetes {version}: {error.message} at {list(error.path)}"
                )


def test_checkov_finds_no_failed_check(
    checkov: str, render: Callable[..., Rendered], tmp_path: Path
) -> None:
    """Chart-wide skips are in helm/accident-triage/.checkov.yaml, object-level ones
    are checkov.io/skipN annotations next to the object; each says why."""
    for scenario_name in SCENARIOS:
        (tmp_path / f"{scenario_name}.yaml").write_text(render(scenario_name).text)
    result = subprocess.run(
        [
            checkov,
            "-d",
            str(tmp_path),
            "--config-file",
            str(CHART / ".checkov.yaml"),
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{check['check_id']} {check['resource']} ({Path(check['file_path']).name})"
        for report in reports
        for check in report["results"]["failed_checks"]
    ]
    passed = sum(report["summary"]["passed"] for report in reports)
    assert not failed, "\n".join(failed)
    assert passed > 100, result.stdout[-2000:]
    # Every object-level skip carries its reason: "CKV_K8S_n=why".
    skipped = {
        check["check_id"] for report in reports for check in report["results"]["skipped_checks"]
    }
    reasons = {}
    for scenario_name in SCENARIOS:
        for doc in render(scenario_name).docs:
            for key, value in doc["metadata"].get("annotations", {}).items():
                if key.startswith("checkov.io/skip"):
                    check_id, _, reason = value.partition("=")
                    assert len(reason) > 30, f"{doc['metadata']['name']}: {check_id} needs a reason"
                    reasons[check_id] = reason
    assert skipped <= set(reasons), skipped - set(reasons)


def test_yamllint_on_the_deployment_yaml() -> None:
    targets = [
        "k8s",
        "skaffold.yaml",
        "helm/accident-triage/values.yaml",
        "helm/accident-triage/ci",
        "helm/accident-triage/Chart.yaml",
    ]
    result = subprocess.run(
        [
            str(Path(ROOT, ".venv", "bin", "yamllint"))
            if Path(ROOT, ".venv", "bin", "yamllint").exists()
            else "yamllint",
            "--strict",
            *targets,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- skaffold.yaml agrees with the chart -------------------------------------------------


def test_skaffold_deploys_the_built_images_and_forwards_existing_services(
    render: Callable[..., Rendered],
) -> None:
    skaffold = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a["docker"]["target"] for a in skaffold["build"]["artifacts"]}
    values = chart_values()
    assert artifacts == {
        values["scorer"]["image"]["repository"]: "scorer",
        values["jobsImage"]["repository"]: "jobs",
    }
    (release,) = skaffold["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"]).resolve() == CHART.resolve()
    templates = release["setValueTemplates"]
    assert set(templates) == {
        "scorer.image.repository",
        "scorer.image.tag",
        "jobsImage.repository",
        "jobsImage.tag",
    }
    for key, template in templates.items():
        node: Any = values
        for part in key.split("."):
            node = node[part]
        artifact = "accident_triage_" + ("scorer" if key.startswith("scorer") else "jobs")
        assert artifact in template
    for profile in skaffold["profiles"]:
        for patch in profile["patches"]:
            for values_file in patch["value"]:
                assert (ROOT / values_file).is_file()
    # The forwarded Services exist under the release name skaffold uses.
    result = subprocess.run(
        ["helm", "template", release["name"], str(CHART), "--namespace", release["namespace"]],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    services = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all(result.stdout)
        if d and d["kind"] == "Service"
    }
    for forward in skaffold["portForward"]:
        assert forward["resourceName"] in services, forward["resourceName"]
        ports = {p["port"] for p in services[forward["resourceName"]]["spec"]["ports"]}
        assert forward["port"] in ports


def test_kind_port_mappings_match_the_local_values(render: Callable[..., Rendered]) -> None:
    kind = yaml.safe_load((ROOT / "k8s" / "kind-config.yaml").read_text())
    mapped = {
        m["containerPort"]: m for node in kind["nodes"] for m in node.get("extraPortMappings", [])
    }
    assert all(m["listenAddress"] == "127.0.0.1" for m in mapped.values())
    local = yaml.safe_load((ROOT / "k8s" / "values-local.yaml").read_text())
    for component in ("scorer", "grafana"):
        service = local[component]["service"]
        assert service["type"] == "NodePort"
        assert service["nodePort"] in mapped, component
    rendered = render("default", "-f", str(ROOT / "k8s" / "values-local.yaml"))
    for component in ("scorer", "grafana"):
        service = rendered.get("Service", f"triage-accident-triage-{component}")
        assert service["spec"]["type"] == "NodePort"
        assert service["spec"]["ports"][0]["nodePort"] == local[component]["service"]["nodePort"]
    metrics = yaml.safe_load((ROOT / "k8s" / "metrics-server" / "kustomization.yaml").read_text())
    assert "--kubelet-insecure-tls" in metrics["patches"][0]["patch"]
