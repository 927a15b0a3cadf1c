"""Helm releases of the chart on the test control plane: install, upgrade and inspect
them as a user would, with the real `helm` CLI and `kubectl`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.k8s_cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "accident-triage"
LOCAL_VALUES = ROOT / "k8s" / "values-local.yaml"
SCENARIOS = sorted(
    p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml")
)
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
}
# Kinds of the chart that run pods, with where their pod template is.
WORKLOADS = ("deployments", "cronjobs", "jobs")


class HelmError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"{' '.join(self.cmd)} exited {self.returncode}:\n{self.stdout}\n{self.stderr}"


def helm(cluster: Cluster, *args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    """``helm ARGS`` against the cluster; fails with helm's own output."""
    command = ["helm", *args]
    result = subprocess.run(
        command, env=cluster.env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise HelmError(result.returncode, command, result.stdout, result.stderr)
    return result


def warnings_in(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Lines where Helm or the API server warned (deprecations, Pod Security, symlinks)."""
    lines = (result.stdout + "\n" + result.stderr).splitlines()
    return [line for line in lines if "warning" in line.lower()]


@dataclass
class Release:
    cluster: Cluster
    name: str
    namespace: str
    # What `helm install` printed, once it ran.
    install_output: subprocess.CompletedProcess[str] | None = None

    @property
    def fullname(self) -> str:
        return self.name if "accident-triage" in self.name else f"{self.name}-accident-triage"

    def install(self, *args: str, values: Sequence[Path] = ()) -> subprocess.CompletedProcess[str]:
        self.install_output = helm(
            self.cluster, "install", self.name, str(CHART), *self._common(values), *args
        )
        return self.install_output

    def status(self) -> dict[str, Any]:
        return dict(
            json.loads(
                helm(self.cluster, "status", self.name, "-n", self.namespace, "-o", "json").stdout
            )
        )

    def upgrade(self, *args: str, values: Sequence[Path] = ()) -> subprocess.CompletedProcess[str]:
        return helm(self.cluster, "upgrade", self.name, str(CHART), *self._common(values), *args)

    def _common(self, values: Sequence[Path]) -> list[str]:
        files = [arg for path in values for arg in ("-f", str(path))]
        return ["--namespace", self.namespace, *files]

    def get(self, resource: str, name: str | None = None, *, selector: str = "") -> Any:
        """``kubectl get -o json`` in the release's namespace (a list's items, or one object)."""
        args = ["get", resource, "-n", self.namespace, "-o", "json"]
        if name:
            args.insert(2, name)
        if selector:
            args += ["-l", selector]
        data = json.loads(self.cluster.kubectl(*args).stdout)
        return data if name else data["items"]

    def objects(self, resource: str) -> list[dict[str, Any]]:
        """This release's objects of one resource type."""
        return self.get(resource, selector=f"app.kubernetes.io/instance={self.name}")

    def pod_template_hashes(self) -> dict[str, str]:
        """kind/name -> the pod template as stored (defaults applied), serialised: it
        changes exactly when the workload's pods would be replaced."""
        hashes = {}
        for resource in ("deployments",):
            for obj in self.objects(resource):
                template = obj["spec"]["template"]
                hashes[f"{resource}/{obj['metadata']['name']}"] = json.dumps(
                    template, sort_keys=True
                )
        return hashes

    def secret_data(self, name: str) -> dict[str, str]:
        return dict(self.get("secret", name).get("data") or {})

    def wait_for_jobs(self, selector: str, *, timeout: float = 120.0) -> list[dict[str, Any]]:
        """Waits until every Job matching ``selector`` completed; returns them."""
        jobs: list[dict[str, Any]] = []

        def complete() -> bool:
            nonlocal jobs
            jobs = self.get("jobs", selector=selector)
            return bool(jobs) and all(_job_done(job, "Complete") for job in jobs)

        self.cluster.wait_for(complete, f"Jobs {selector} in {self.namespace}", timeout=timeout)
        return jobs


def _job_done(job: dict[str, Any], kind: str) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def pod_matches(obj: dict[str, Any], selector: dict[str, Any]) -> bool:
    """Does a label selector (matchLabels and matchExpressions) select this object?"""
    labels = obj["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True
