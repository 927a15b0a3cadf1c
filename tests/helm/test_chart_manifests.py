"""Assertions on the rendered manifests of every ``ci/*-values.yaml`` scenario: probes,
resources, security contexts, autoscaling, RBAC, labels, references, images and jobs.
The storage (SeaweedFS, per-role S3 credentials) is in test_chart_storage.py, the
retrain admission policy in test_chart_admission_policy.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from pydantic import TypeAdapter
from pydantic_settings import BaseSettings

from monitoring.settings import MonitoringSettings
from service.settings import ScorerSettings
from tests.helm.chart import (
    CHART,
    CLUSTER_SCOPED_KINDS,
    GRAFANA,
    GRAFANA_LINK,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    RELEASE,
    ROOT,
    Rendered,
    chart_app_version,
    chart_values,
    env_of,
    env_values,
    image_ref,
    name,
    pod_labels,
    pod_spec,
)
from training.settings import TrainingSettings

Template = Callable[..., subprocess.CompletedProcess[str]]

RETRAIN_RULES = [
    {
        "apiGroups": ["batch"],
        "resources": ["cronjobs"],
        "resourceNames": [name("training")],
        "verbs": ["get"],
    },
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list", "create"]},
]
PROMETHEUS_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]


# --- every object -------------------------------------------------------------------


def test_every_object_has_the_standard_labels_and_the_release_namespace(
    scenario: Rendered,
) -> None:
    for doc in scenario.docs:
        labels = doc["metadata"].get("labels", {})
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert labels.get("app.kubernetes.io/name") == "accident-triage", where
        assert labels.get("app.kubernetes.io/instance") == RELEASE, where
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", where
        assert labels.get("app.kubernetes.io/component"), where
        assert labels.get("helm.sh/chart", "").startswith("accident-triage-"), where
        if doc["kind"] in CLUSTER_SCOPED_KINDS:
            assert "namespace" not in doc["metadata"], where
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, where
        assert len(doc["metadata"]["name"]) <= 63, where


def test_pod_templates_carry_the_selector_labels(scenario: Rendered) -> None:
    for doc in scenario.kinds("Deployment"):
        selector = doc["spec"]["selector"]["matchLabels"]
        labels = pod_labels(doc)
        assert selector.items() <= labels.items(), doc["metadata"]["name"]
        assert set(selector) == {
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
        }


def test_no_cluster_scoped_rbac(scenario: Rendered) -> None:
    assert not scenario.kinds("ClusterRole")
    assert not scenario.kinds("ClusterRoleBinding")


# --- containers -------------------------------------------------------------------


def test_every_container_has_cpu_and_memory_requests_and_limits(scenario: Rendered) -> None:
    for doc, container in scenario.containers():
        resources = container.get("resources", {})
        for section in ("requests", "limits"):
            assert set(resources.get(section, {})) >= {"cpu", "memory"}, (
                f"{doc['kind']}/{doc['metadata']['name']} {container['name']}: {section}"
            )


def test_every_pod_and_container_is_hardened(scenario: Rendered) -> None:
    for doc, spec in scenario.workloads():
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["runAsUser"] > 0, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key), where
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["runAsNonRoot"] is True, where
            assert context.get("privileged", False) is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where


def test_our_images_run_as_their_fixed_uid_with_a_writable_tmp(scenario: Rendered) -> None:
    ours = (
        scenario.values["scorer"]["image"]["repository"],
        scenario.values["jobsImage"]["repository"],
    )
    for doc, spec in scenario.workloads():
        for container in spec["containers"]:
            if container["image"].split(":")[0].split("@")[0] not in ours:
                continue
            assert spec["securityContext"]["runAsUser"] == 10001
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, doc["metadata"]["name"]
            volume = next(v for v in spec["volumes"] if v["name"] == mounts["/tmp"])
            assert "sizeLimit" in volume["emptyDir"], doc["metadata"]["name"]


# Every image value of the chart, by its path in values.yaml.
IMAGE_VALUES = (
    "scorer.image",
    "jobsImage",
    "seaweedfs.image",
    "prometheus.image",
    "pushgateway.image",
    "grafana.image",
)


def value_at(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        node = node[part]
    return node


def expected_images(values: dict[str, Any]) -> dict[str, str]:
    return {path: image_ref(values, value_at(values, path)) for path in IMAGE_VALUES}


def test_every_image_reference_comes_from_the_values(scenario: Rendered) -> None:
    allowed = expected_images(scenario.values)
    used = {container["image"] for _, container in scenario.containers()}
    assert used <= set(allowed.values()), used - set(allowed.values())
    assert allowed["scorer.image"] in used
    assert allowed["jobsImage"] in used
    if scenario.values["seaweedfs"]["enabled"]:
        seaweedfs = pod_spec(scenario.get("Deployment", name("seaweedfs")))["containers"][0]
        assert seaweedfs["image"] == allowed["seaweedfs.image"]


def ci_versions() -> dict[str, str]:
    lines = (ROOT / ".ci" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_default_images_pin_their_registry_and_seaweedfs_is_the_tested_release(
    render: Callable[..., Rendered],
) -> None:
    rendered = render("default")
    images = {
        doc["metadata"]["name"]: container["image"] for doc, container in rendered.containers()
    }
    # The store the tests build and run (`weed`, .ci/build-go-tools.sh) is the one deployed.
    release = ci_versions()["SEAWEEDFS_RELEASE"]
    assert images[name("seaweedfs")] == f"docker.io/chrislusf/seaweedfs:{release}"
    for component in ("prometheus", "pushgateway", "grafana"):
        assert images[name(component)].startswith("docker.io/"), component
    # Our own images have no registry: they are loaded into kind/minikube.
    assert images[name("scorer")] == f"accident-triage-scorer:{chart_app_version()}"
    assert images[name("training")] == f"accident-triage-jobs:{chart_app_version()}"


def test_image_overrides_reach_every_container(render: Callable[..., Rendered]) -> None:
    digest = "sha256:" + "a" * 64
    rendered = render(
        "default",
        "--set",
        "scorer.image.repository=registry.example.org/triage/scorer",
        "--set",
        "scorer.image.tag=1.2.3",
        "--set",
        "jobsImage.repository=registry.example.org/triage/jobs",
        "--set",
        f"jobsImage.digest={digest}",
    )
    images = {container["image"] for _, container in rendered.containers()}
    assert "registry.example.org/triage/scorer:1.2.3" in images
    assert f"registry.example.org/triage/jobs@{digest}" in images
    assert not {i for i in images if i.startswith("accident-triage-")}
    registries = render(
        "default",
        "--set",
        "scorer.image.registry=ghcr.io/acme/",
        "--set",
        "seaweedfs.image.registry=quay.io",
    )
    images = {container["image"] for _, container in registries.containers()}
    assert f"ghcr.io/acme/accident-triage-scorer:{chart_app_version()}" in images
    assert f"accident-triage-jobs:{chart_app_version()}" in images
    assert any(i.startswith("quay.io/chrislusf/seaweedfs:") for i in images)


def test_global_image_registry_replaces_every_registry(render: Callable[..., Rendered]) -> None:
    rendered = render(
        "default",
        "--set",
        "global.imageRegistry=mirror.example.org/hub/",
        "--set",
        "scorer.image.registry=ghcr.io/acme",
        "--set",
        "grafana.image.registry=quay.io",
    )
    images = {container["image"] for _, container in rendered.containers()}
    values = chart_values()
    expected = set()
    for path in IMAGE_VALUES:
        image = value_at(values, path)
        tag = image["tag"] or chart_app_version()
        expected.add(f"mirror.example.org/hub/{image['repository']}:{tag}")
    assert images == expected


# --- the scorer -----------------------------------------------------------------------


def scorer(scenario: Rendered) -> dict[str, Any]:
    return scenario.get("Deployment", name("scorer"))


def test_scorer_probes(scenario: Rendered) -> None:
    container = pod_spec(scorer(scenario))["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert {"name": "http", "containerPort": 8000, "protocol": "TCP"} in container["ports"]


def test_every_long_running_container_has_liveness_and_readiness_probes(
    scenario: Rendered,
) -> None:
    for doc in scenario.kinds("Deployment"):
        for container in pod_spec(doc)["containers"]:
            assert "livenessProbe" in container, doc["metadata"]["name"]
            assert "readinessProbe" in container, doc["metadata"]["name"]


def test_termination_grace_covers_the_drain_and_the_log_flush(scenario: Rendered) -> None:
    spec = pod_spec(scorer(scenario))
    shutdown = scenario.values["scorer"]["shutdown"]
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["SCORER_GRACEFUL_SHUTDOWN_SECONDS"] == str(shutdown["gracefulSeconds"])
    assert env["SCORER_SHUTDOWN_FLUSH_SECONDS"] == str(shutdown["flushSeconds"])
    needed = (
        shutdown["preStopSleepSeconds"] + shutdown["gracefulSeconds"] + shutdown["flushSeconds"]
    )
    assert spec["terminationGracePeriodSeconds"] > needed
    assert spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"] == [
        "sleep",
        str(shutdown["preStopSleepSeconds"]),
    ]


def test_scorer_storage_and_settings_environment(scenario: Rendered) -> None:
    env = {e["name"]: e for e in pod_spec(scorer(scenario))["containers"][0]["env"]}
    storage = scenario.values["storage"]
    prefix = storage["prefix"].strip("/")
    assert env["SCORER_REGISTRY_URI"]["value"] == (
        f"s3://{storage['bucket']}/{prefix}/" if prefix else f"s3://{storage['bucket']}/"
    )
    assert env["AWS_DEFAULT_REGION"]["value"] == storage["region"]
    assert env["AWS_ENDPOINT_URL"]["value"].startswith("http")
    assert "secretKeyRef" in env["AWS_ACCESS_KEY_ID"]["valueFrom"]
    assert "secretKeyRef" in env["SCORER_API_KEY"]["valueFrom"]
    # One signing key for every replica: a Secret, never a per-pod value.
    assert "secretKeyRef" in env["SCORER_REQUEST_ID_KEY"]["valueFrom"]
    assert env["SCORER_RETRAIN_MODE"]["value"] == scenario.values["scorer"]["retrain"]["mode"]


def test_hpa_owns_the_replicas(scenario: Rendered) -> None:
    deployment = scorer(scenario)
    autoscaling = scenario.values["scorer"]["autoscaling"]
    hpas = scenario.kinds("HorizontalPodAutoscaler")
    if not autoscaling["enabled"]:
        assert not hpas
        assert deployment["spec"]["replicas"] == scenario.values["scorer"]["replicaCount"]
        return
    assert "replicas" not in deployment["spec"]
    (hpa,) = hpas
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name("scorer"),
    }
    assert hpa["spec"]["minReplicas"] == autoscaling["minReplicas"]
    assert hpa["spec"]["maxReplicas"] == autoscaling["maxReplicas"]
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
    assert targets["cpu"] == {
        "type": "Utilization",
        "averageUtilization": autoscaling["targetCPUUtilizationPercentage"],
    }
    if autoscaling["targetMemoryUtilizationPercentage"]:
        assert (
            targets["memory"]["averageUtilization"]
            == (autoscaling["targetMemoryUtilizationPercentage"])
        )
    else:
        assert "memory" not in targets
    assert set(hpa["spec"]["behavior"]) == {"scaleUp", "scaleDown"}
    container = pod_spec(deployment)["containers"][0]
    assert container["resources"]["requests"]["cpu"], "CPU utilisation needs a CPU request"


def test_pdb_and_topology_spread(scenario: Rendered) -> None:
    spec = pod_spec(scorer(scenario))
    keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert all(
        c["whenUnsatisfiable"] == "ScheduleAnyway" for c in spec["topologySpreadConstraints"]
    )
    pdbs = scenario.kinds("PodDisruptionBudget")
    if scenario.values["scorer"]["podDisruptionBudget"]["enabled"]:
        (pdb,) = pdbs
        assert (
            pdb["spec"]["selector"]["matchLabels"]
            == scorer(scenario)["spec"]["selector"]["matchLabels"]
        )
        assert pdb["spec"]["maxUnavailable"] == 1
        # A pod that serves nothing (no model yet, crash loop) never blocks a drain.
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    else:
        assert not pdbs


def test_scrape_annotations_and_service(scenario: Rendered) -> None:
    annotations = scorer(scenario)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8000"
    assert annotations["prometheus.io/path"] == "/metrics"
    service = scenario.get("Service", name("scorer"))
    assert service["spec"]["selector"] == scorer(scenario)["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_ingress_points_at_the_scorer_service(render: Callable[..., Rendered]) -> None:
    rendered = render("ingress")
    (ingress,) = rendered.kinds("Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": name("scorer"), "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["hosts"] == ["triage.example.org"]
    assert not render("default").kinds("Ingress")


# --- service accounts and RBAC -------------------------------------------------------


def test_tokens_are_mounted_only_where_the_api_is_used(scenario: Rendered) -> None:
    for account in scenario.kinds("ServiceAccount"):
        assert account["automountServiceAccountToken"] is False, account["metadata"]["name"]
    users = {name("prometheus")}
    if scenario.values["scorer"]["retrain"]["mode"] == "kubernetes":
        users.add(name("scorer"))
    if scenario.values["drift"]["retrain"]["mode"] == "kubernetes":
        users.add(name("drift"))
    for doc, spec in scenario.workloads():
        expected = doc["metadata"]["name"] in users
        assert spec["automountServiceAccountToken"] is expected, doc["metadata"]["name"]


def test_rbac_is_exactly_what_each_component_needs(scenario: Rendered) -> None:
    roles = {r["metadata"]["name"]: r["rules"] for r in scenario.kinds("Role")}
    expected: dict[str, list[dict[str, Any]]] = {}
    if scenario.values["prometheus"]["enabled"]:
        expected[name("prometheus")] = PROMETHEUS_RULES
    if scenario.values["drift"]["retrain"]["mode"] == "kubernetes":
        expected[name("drift")] = RETRAIN_RULES
    if scenario.values["scorer"]["retrain"]["mode"] == "kubernetes":
        expected[name("scorer") + "-retrain"] = RETRAIN_RULES
    assert roles == expected
    accounts = scenario.names("ServiceAccount")
    bindings = scenario.kinds("RoleBinding")
    assert {b["roleRef"]["name"] for b in bindings} == set(roles)
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert subject["name"] in accounts
            assert subject["namespace"] == NAMESPACE


def test_drift_and_scorer_jobs_target_the_training_cronjob(render: Callable[..., Rendered]) -> None:
    rendered = render("ingress")  # scorer.retrain.mode=kubernetes there
    drift = pod_spec(rendered.get("CronJob", name("drift")))["containers"][0]
    env = {e["name"]: e.get("value") for e in drift["env"]}
    assert env["MONITORING_RETRAIN_MODE"] == "kubernetes"
    assert env["MONITORING_TRAINING_CRONJOB"] == name("training")
    assert env["MONITORING_NAMESPACE"] == NAMESPACE
    assert env["MONITORING_PUSHGATEWAY_URL"] == (
        f"http://{name('pushgateway')}.{NAMESPACE}.svc:9091"
    )
    scorer_env = {
        e["name"]: e.get("value") for e in pod_spec(scorer(rendered))["containers"][0]["env"]
    }
    assert scorer_env["SCORER_TRAINING_CRONJOB"] == name("training")
    assert scorer_env["SCORER_NAMESPACE"] == NAMESPACE
    rendered.get("CronJob", name("training"))


# --- references ------------------------------------------------------------------------


def external_secrets(values: dict[str, Any]) -> set[str]:
    """Secrets the user provides (existingSecret values); everything else is rendered."""
    external = values["storage"]["external"]
    return {
        s
        for s in (
            external["existingSecret"],
            *external["roleSecrets"].values(),
            values["scorer"]["apiKey"]["existingSecret"],
            values["scorer"]["requestIdKey"]["existingSecret"],
            values["grafana"]["admin"]["existingSecret"],
        )
        if s
    } | {tls["secretName"] for tls in values["scorer"]["ingress"]["tls"]}


def test_every_referenced_configmap_secret_and_account_exists(scenario: Rendered) -> None:
    configmaps = scenario.names("ConfigMap")
    secrets = scenario.names("Secret") | external_secrets(scenario.values)
    accounts = scenario.names("ServiceAccount") | {"default"}
    for doc, spec in scenario.workloads():
        where = doc["metadata"]["name"]
        assert spec.get("serviceAccountName", "default") in accounts, where
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps, where
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, where
            for source in volume.get("projected", {}).get("sources", []):
                if "configMap" in source:
                    assert source["configMap"]["name"] in configmaps, where
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert claim in scenario.names("PersistentVolumeClaim"), where
        for container in spec.get("initContainers", []) + spec["containers"]:
            for env in container.get("env", []):
                reference = env.get("valueFrom", {})
                if "secretKeyRef" in reference:
                    assert reference["secretKeyRef"]["name"] in secrets, (where, env["name"])
                if "configMapKeyRef" in reference:
                    assert reference["configMapKeyRef"]["name"] in configmaps, where
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, where
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps, where
    for service in scenario.kinds("Service"):
        selector = service["spec"]["selector"]
        assert any(
            selector.items() <= pod_labels(doc).items()
            for doc, _ in scenario.workloads()
            if doc["kind"] == "Deployment"
        ), service["metadata"]["name"]


def test_rendered_secrets_keep_their_values_out_of_the_values(scenario: Rendered) -> None:
    for secret in scenario.kinds("Secret"):
        assert secret["type"] == "Opaque"
        assert set(secret) >= {"data"}
        assert "stringData" not in secret
    text = yaml.safe_dump(scenario.values)
    assert "password:" not in text.lower().replace("passwordkey:", "")


def test_every_pod_is_selected_by_a_network_policy(scenario: Rendered) -> None:
    policies = [
        p["spec"]["podSelector"].get("matchLabels", {}) for p in scenario.kinds("NetworkPolicy")
    ]
    for doc, _ in scenario.workloads():
        labels = pod_labels(doc)
        assert any(selector.items() <= labels.items() for selector in policies), doc["metadata"][
            "name"
        ]


# --- jobs --------------------------------------------------------------------------------


def test_training_cronjob_is_a_suspended_template(scenario: Rendered) -> None:
    cronjob = scenario.get("CronJob", name("training"))
    assert cronjob["spec"]["suspend"] is True
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    container = pod_spec(cronjob)["containers"][0]
    assert container["command"] == ["python", "-m", "training", "train"]
    env = env_values(container)
    assert env["TRAINING_REGISTRY_URI"].startswith("s3://")
    assert env["TRAINING_RAW_URI"] == scenario.values["training"]["rawUri"]
    # Retrains are created from this template: they must really retrain.
    assert "TRAINING_FIRST_MODEL_ONLY" not in env


def test_cronjob_job_templates_carry_only_the_selector_labels(scenario: Rendered) -> None:
    for cronjob in scenario.kinds("CronJob"):
        component = cronjob["metadata"]["labels"]["app.kubernetes.io/component"]
        assert cronjob["spec"]["jobTemplate"]["metadata"]["labels"] == {
            "app.kubernetes.io/name": "accident-triage",
            "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/component": component,
        }, cronjob["metadata"]["name"]


def test_cronjob_job_labels_stay_the_same_across_chart_versions(
    template: Template, tmp_path: Path
) -> None:
    """The retrain trigger finds a CronJob's running Jobs by their labels: an upgrade
    of the chart must not change them (it changes the objects' own labels)."""
    upgraded = tmp_path / "accident-triage"
    shutil.copytree(CHART, upgraded)
    chart = yaml.safe_load((upgraded / "Chart.yaml").read_text())
    chart["version"] = chart["appVersion"] = "99.1.0"
    (upgraded / "Chart.yaml").write_text(yaml.safe_dump(chart))

    def cronjobs(chart_dir: Path) -> dict[str, dict[str, Any]]:
        result = template(chart=chart_dir)
        assert result.returncode == 0, result.stderr
        return {
            d["metadata"]["name"]: d
            for d in yaml.safe_load_all(result.stdout)
            if d and d["kind"] == "CronJob"
        }

    before, after = cronjobs(CHART), cronjobs(upgraded)
    assert set(before) == set(after) == {name("training"), name("drift")}
    for cronjob in before:
        assert before[cronjob]["metadata"]["labels"] != after[cronjob]["metadata"]["labels"]
        assert (
            before[cronjob]["spec"]["jobTemplate"]["metadata"]
            == after[cronjob]["spec"]["jobTemplate"]["metadata"]
        )


DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
BOOTSTRAP_NAME = re.compile(re.escape(name("bootstrap")) + "-[0-9a-f]{8}")


def bootstrap_job(rendered: Rendered) -> dict[str, Any]:
    (job,) = [j for j in rendered.kinds("Job") if BOOTSTRAP_NAME.fullmatch(j["metadata"]["name"])]
    return job


def test_first_model_job_is_a_plain_job_that_waits_for_the_storage(scenario: Rendered) -> None:
    training = scenario.values["training"]
    if not (training["enabled"] and training["bootstrap"]["enabled"]):
        assert not scenario.kinds("Job")
        return
    # The only Job: no bucket-creation Job any more (SeaweedFS creates the bucket).
    (job,) = scenario.kinds("Job")
    assert job is bootstrap_job(scenario)
    assert not any(k.startswith("helm.sh/hook") for k in job["metadata"].get("annotations", {}))
    bootstrap = training["bootstrap"]
    assert job["spec"]["activeDeadlineSeconds"] == bootstrap["activeDeadlineSeconds"]
    spec = pod_spec(job)
    (wait,) = spec["initContainers"]
    (container,) = spec["containers"]
    assert wait["name"] == "wait-for-storage"
    assert wait["image"] == container["image"]
    assert wait["command"] == [
        "python",
        "-m",
        "training",
        "wait-for-storage",
        "--timeout",
        str(bootstrap["storageWaitSeconds"]),
    ]
    # It waits for the storage the training run uses, with the same credentials.
    wait_env, env = env_of(wait), env_of(container)
    for variable in ("TRAINING_REGISTRY_URI", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID"):
        assert wait_env.get(variable) == env.get(variable), variable
    assert wait_env.get("AWS_ENDPOINT_URL") == env.get("AWS_ENDPOINT_URL")
    assert env["TRAINING_FIRST_MODEL_ONLY"]["value"] == "true"
    if bootstrap["source"] == "synthetic":
        assert env["TRAINING_RAW_URI"]["value"] == (
            f"synthetic://?accidents={bootstrap['accidents']}&seed={bootstrap['seed']}"
        )
    else:
        assert f"download --year {bootstrap['baacYear']}" in container["command"][-1]


def test_only_the_helm_test_pod_is_a_hook(scenario: Rendered) -> None:
    for doc in scenario.docs:
        hooks = {k for k in doc["metadata"].get("annotations", {}) if k.startswith("helm.sh/hook")}
        if (doc["kind"], doc["metadata"]["name"]) == ("Pod", name("test")):
            assert hooks
        else:
            assert not hooks, f"{doc['kind']}/{doc['metadata']['name']}: {hooks}"


def test_first_model_job_name_changes_with_its_pod_template_only(template: Template) -> None:
    """A Job's pod template is immutable: its name carries a digest of it, so a changed
    template is a new Job. The digest must not change with anything else, such as the
    credentials generated anew at every render."""

    def job_name(*args: str) -> str:
        result = template(*args)
        assert result.returncode == 0, result.stderr
        (job,) = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Job"]
        assert BOOTSTRAP_NAME.fullmatch(job["metadata"]["name"])
        job_name: str = job["metadata"]["name"]
        return job_name

    first = job_name()
    assert job_name() == first
    assert job_name("--set", "grafana.anonymousViewer=true") == first
    assert job_name("--set", "training.bootstrap.seed=7") != first
    assert job_name("--set", "jobsImage.tag=9.9.9") != first


def test_cronjob_names_leave_room_for_the_job_suffix(template: Template) -> None:
    """The CronJob controller appends 11 characters to a Job's name, which must stay a
    label value (63): CronJob names are at most 52 characters, with the longest release
    name Helm accepts (53), and everything that names them agrees."""
    release = "r" + "x" * 52
    # The ingress scenario has both retrain callers (drift job and scorer).
    result = template("-f", str(CHART / "ci" / "ingress-values.yaml"), release=release)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    cronjobs = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d["metadata"]["name"]
        for d in docs
        if d["kind"] == "CronJob"
    }
    assert set(cronjobs) == {"training", "drift"}
    for component, cronjob in cronjobs.items():
        assert len(cronjob) <= 52, cronjob
        assert cronjob.startswith(release[:40]), cronjob
        assert cronjob.endswith(f"-{component}"), cronjob
    # Kubernetes' own limits: Services and Jobs are DNS labels (a Job's name is also a
    # label value), everything else a DNS subdomain.
    for doc in docs:
        limit = 63 if doc["kind"] in {"Service", "Job"} else 253
        assert len(doc["metadata"]["name"]) <= limit, doc["metadata"]["name"]
        assert DNS_SUBDOMAIN.fullmatch(doc["metadata"]["name"]), doc["metadata"]["name"]
    training = cronjobs["training"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    drift = next(d for d in by_kind["CronJob"] if d["metadata"]["name"] == cronjobs["drift"])
    assert env_values(pod_spec(drift)["containers"][0])["MONITORING_TRAINING_CRONJOB"] == training
    scorer = next(
        d
        for d in by_kind["Deployment"]
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "scorer"
    )
    assert env_values(pod_spec(scorer)["containers"][0])["SCORER_TRAINING_CRONJOB"] == training
    for role in by_kind["Role"]:
        for rule in role["rules"]:
            if "cronjobs" in rule["resources"]:
                assert rule["resourceNames"] == [training], role["metadata"]["name"]
    (binding,) = by_kind["ValidatingAdmissionPolicyBinding"]
    assert binding["spec"]["paramRef"]["name"] == training


def test_drift_job_always_knows_its_namespace(scenario: Rendered) -> None:
    """MONITORING_NAMESPACE: where the training CronJob is, and the `namespace` label of
    the pushed metrics, whatever the retrain mode."""
    if not scenario.values["drift"]["enabled"]:
        return
    drift = pod_spec(scenario.get("CronJob", name("drift")))["containers"][0]
    assert env_values(drift)["MONITORING_NAMESPACE"] == NAMESPACE


# --- the chart's defaults are the code's ------------------------------------------------

# Settings the chart sets on purpose to something else than the code's default.
DELIBERATE = {
    "SCORER_REGISTRY_URI": "the release's bucket, not a local folder",
    "SCORER_RETRAIN_MODE": "local subprocesses make no sense in a scorer pod",
    "SCORER_TRAINING_CRONJOB": "the release's own training CronJob",
    "SCORER_NAMESPACE": "the release namespace",
    "MONITORING_REGISTRY_URI": "the release's bucket",
    "MONITORING_RETRAIN_MODE": "retrains are Jobs in the cluster",
    "MONITORING_PUSHGATEWAY_URL": "the bundled Pushgateway",
    "MONITORING_NAMESPACE": "the release namespace",
    "MONITORING_TRAINING_CRONJOB": "the release's own training CronJob",
    "MONITORING_EVIDENTLY_UI_URL": "the bundled Evidently UI, when evidentlyUi.enabled",
    "TRAINING_REGISTRY_URI": "the release's bucket",
    "TRAINING_RAW_URI": "a size for the chart (training.rawUri, training.bootstrap)",
    "TRAINING_FIRST_MODEL_ONLY": "the first-model Job's whole point",
}
SETTINGS: dict[str, type[BaseSettings]] = {
    "SCORER_": ScorerSettings,
    "MONITORING_": MonitoringSettings,
    "TRAINING_": TrainingSettings,
}


def settings_variables(rendered: Rendered) -> list[tuple[str, type[BaseSettings], str, str]]:
    """(variable, settings class, field, rendered value) of every plain settings variable
    of the scorer, the drift job and the training pods."""
    found = []
    for doc, container in rendered.containers():
        component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
        if component not in {"scorer", "drift", "training", "bootstrap"} or doc["kind"] == "Pod":
            continue
        for variable, value in env_values(container).items():
            for prefix, settings in SETTINGS.items():
                if variable.startswith(prefix) and value is not None:
                    field = variable.removeprefix(prefix).lower()
                    found.append((variable, settings, field, value))
    return found


def parse_setting(settings: type[BaseSettings], field: str, value: str) -> Any:
    """A variable's value as the settings class reads it (type and constraints)."""
    info = settings.model_fields[field]
    annotation: Any = info.annotation
    if info.metadata:
        annotation = Annotated[(annotation, *info.metadata)]
    return TypeAdapter(annotation).validate_python(value)


def test_every_settings_variable_the_chart_sets_is_a_valid_setting(scenario: Rendered) -> None:
    found = settings_variables(scenario)
    assert {settings for _, settings, _, _ in found} == set(SETTINGS.values())
    for variable, settings, field, value in found:
        assert field in settings.model_fields, f"{variable}: {settings.__name__} has no {field}"
        parse_setting(settings, field, value)


def compare_with_code_defaults(rendered: Rendered) -> set[str]:
    """Asserts every settings variable rendered, except the DELIBERATE ones, holds the
    code's default; returns the variables checked."""
    checked = set()
    for variable, settings, field, value in settings_variables(rendered):
        if variable in DELIBERATE:
            continue
        default = settings.model_fields[field].default
        parsed = parse_setting(settings, field, value)
        assert parsed == default, f"{variable}={value!r}, {settings.__name__}.{field}={default!r}"
        checked.add(variable)
    return checked


def test_chart_defaults_are_the_code_defaults(render: Callable[..., Rendered]) -> None:
    """drift.minRows is MonitoringSettings.min_rows's default, scorer.batchLimit is
    ScorerSettings.batch_limit's, and so on for every variable the chart sets, except
    the ones it sets on purpose (DELIBERATE)."""
    # An entry of the allowlist names a real setting: a renamed one cannot linger there
    # and excuse a variable nobody checks.
    for variable in DELIBERATE:
        prefix = next(p for p in SETTINGS if variable.startswith(p))
        assert variable.removeprefix(prefix).lower() in SETTINGS[prefix].model_fields, variable
    checked = compare_with_code_defaults(render("default"))
    assert {"MONITORING_MIN_ROWS", "MONITORING_DRIFT_SHARE", "SCORER_BATCH_LIMIT"} <= checked
    # Every drift setting the chart renders is compared, none slips through unchecked.
    drift = render("default").get("CronJob", name("drift"))
    rendered = {
        v for v in env_values(pod_spec(drift)["containers"][0]) if v.startswith("MONITORING_")
    }
    assert rendered - set(DELIBERATE) == {
        "MONITORING_MODEL_NAME",
        "MONITORING_WINDOW_HOURS",
        "MONITORING_MIN_ROWS",
        "MONITORING_DRIFT_SHARE",
        "MONITORING_COOLDOWN_HOURS",
        "MONITORING_COMPACTION_ENABLED",
        "MONITORING_RETENTION_DAYS",
        "MONITORING_QUALITY_ENABLED",
        "MONITORING_QUALITY_WINDOW_HOURS",
        "MONITORING_QUALITY_MIN_LABELS",
        "MONITORING_QUALITY_TOLERANCE",
        "MONITORING_RETRAIN_ON_QUALITY_DECAY",
    }
    assert rendered - set(DELIBERATE) <= checked
    values = chart_values()
    defaults = MonitoringSettings.model_fields
    for value, field in [
        ("minRows", "min_rows"),
        ("driftShare", "drift_share"),
        ("windowHours", "window_hours"),
        ("cooldownHours", "cooldown_hours"),
        ("compactionEnabled", "compaction_enabled"),
        ("retentionDays", "retention_days"),
        ("feedbackRetentionDays", "feedback_retention_days"),
        ("qualityEnabled", "quality_enabled"),
        ("qualityWindowHours", "quality_window_hours"),
        ("qualityMinLabels", "quality_min_labels"),
        ("qualityTolerance", "quality_tolerance"),
        ("retrainOnQualityDecay", "retrain_on_quality_decay"),
    ]:
        assert values["drift"][value] == defaults[field].default, value


def test_the_local_cluster_values_keep_the_code_defaults(render: Callable[..., Rendered]) -> None:
    """k8s/values-local.yaml (make kind-up) changes ports and the retrain mode, never a
    setting's default."""
    local = render("default", "-f", str(ROOT / "k8s" / "values-local.yaml"))
    assert "MONITORING_MIN_ROWS" in compare_with_code_defaults(local)


def test_helm_test_pod_checks_ready_and_predict(scenario: Rendered) -> None:
    pod = scenario.get("Pod", name("test"))
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    assert '"/ready"' in script
    assert '"/predict"' in script
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["SCORER_URL"] == f"http://{name('scorer')}.{NAMESPACE}.svc:80"


# --- observability: one source for dashboards and rules ------------------------------------


def test_dashboards_ship_as_sidecar_configmaps_identical_to_grafana_dir(
    scenario: Rendered,
) -> None:
    dashboards = sorted((GRAFANA / "dashboards").glob("*.json"))
    assert dashboards
    rendered = {
        key: value
        for cm in scenario.kinds("ConfigMap")
        if cm["metadata"]["labels"].get("app.kubernetes.io/component") == "dashboards"
        for key, value in cm["data"].items()
    }
    if not scenario.values["dashboards"]["enabled"]:
        assert not rendered
        return
    assert set(rendered) == {p.name for p in dashboards}
    for path in dashboards:
        assert rendered[path.name] == path.read_text().rstrip("\n"), path.name
        json.loads(rendered[path.name])
    for cm in scenario.kinds("ConfigMap"):
        if cm["metadata"]["labels"]["app.kubernetes.io/component"] == "dashboards":
            assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_bundled_prometheus_loads_the_rules_and_scrapes_the_expected_jobs(
    scenario: Rendered,
) -> None:
    if not scenario.values["prometheus"]["enabled"]:
        assert name("prometheus") not in scenario.names("Deployment")
        return
    rules = scenario.get("ConfigMap", name("prometheus") + "-rules")
    assert (
        rules["data"]["alerts.yaml"].strip()
        == (GRAFANA / "prometheus" / "alerts.yaml").read_text().strip()
    )
    config = yaml.safe_load(scenario.get("ConfigMap", name("prometheus"))["data"]["prometheus.yml"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["scorer"]["kubernetes_sd_configs"][0]["namespaces"]["names"] == [NAMESPACE]
    assert jobs["pushgateway"]["honor_labels"] is True
    assert config["rule_files"] == ["/etc/prometheus-rules/*.yaml"]


def test_grafana_provisioning_comes_from_the_grafana_dir(scenario: Rendered) -> None:
    if not scenario.values["grafana"]["enabled"]:
        assert name("grafana") not in scenario.names("Deployment")
        return
    provisioning = scenario.get("ConfigMap", name("grafana") + "-provisioning")["data"]
    for file in ("datasources.yaml", "dashboards.yaml"):
        assert provisioning[file].strip() == (GRAFANA / "provisioning" / file).read_text().strip()
    container = pod_spec(scenario.get("Deployment", name("grafana")))["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PROMETHEUS_URL"] == f"http://{name('prometheus')}.{NAMESPACE}.svc:9090"
    provider = yaml.safe_load(provisioning["dashboards.yaml"])["providers"][0]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert provider["options"]["path"] in mounts


def test_operator_mode_renders_servicemonitors_and_the_prometheusrule(
    render: Callable[..., Rendered],
) -> None:
    rendered = render("kube-prometheus-stack")
    monitors = {m["metadata"]["name"]: m for m in rendered.kinds("ServiceMonitor")}
    assert set(monitors) == {name("scorer"), name("pushgateway")}
    for monitor in monitors.values():
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/component"
    assert monitors[name("pushgateway")]["spec"]["endpoints"][0]["honorLabels"] is True
    (rule,) = rendered.kinds("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    source = yaml.safe_load((GRAFANA / "prometheus" / "alerts.yaml").read_text())
    assert rule["spec"]["groups"] == source["groups"]


def test_operator_objects_follow_the_cluster_capabilities_in_auto_mode(
    render: Callable[..., Rendered],
) -> None:
    minimal_off = "--set=prometheus.enabled=false,grafana.enabled=false"
    without = render("default", minimal_off)
    assert not without.kinds("ServiceMonitor")
    assert not without.kinds("PrometheusRule")
    capable = render(
        "default",
        minimal_off,
        "--api-versions=monitoring.coreos.com/v1/ServiceMonitor",
        "--api-versions=monitoring.coreos.com/v1/PrometheusRule",
    )
    assert capable.kinds("ServiceMonitor")
    assert capable.kinds("PrometheusRule")
    bundled = render(
        "default",
        "--api-versions=monitoring.coreos.com/v1/ServiceMonitor",
        "--api-versions=monitoring.coreos.com/v1/PrometheusRule",
    )
    assert not bundled.kinds("ServiceMonitor"), "the bundled Prometheus scrapes by itself"


@pytest.mark.parametrize("version", [KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1]])
def test_renders_for_each_supported_kubernetes_version(
    render: Callable[..., Rendered], version: str
) -> None:
    assert render("default", f"--kube-version={version}.0").kinds("Deployment")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("training.enabled=false", "drift.retrain.mode=kubernetes creates Jobs"),
        # The checks run whatever is enabled (templates/validate.yaml, not a component's).
        ("scorer.enabled=false,training.enabled=false", "drift.retrain.mode=kubernetes creates"),
        (
            "training.enabled=false,drift.retrain.mode=disabled,scorer.retrain.mode=kubernetes",
            "scorer.retrain.mode=kubernetes creates Jobs",
        ),
        ("seaweedfs.enabled=false", "set storage.external.endpoint"),
        # The MinIO block is gone: an old values file is refused, not silently ignored.
        ("minio.enabled=true", "Additional property minio is not allowed"),
        ("prometheus.enabled=false", "set grafana.prometheusUrl"),
        ("scorer.replicas=3", "Additional property replicas is not allowed"),
        ("scorer.retrain.mode=local", "scorer.retrain.mode must be one of"),
        ("scorer.uid=0", "scorer.uid"),
    ],
)
def test_unsafe_or_inconsistent_values_are_refused(helm: str, settings: str, message: str) -> None:
    result = subprocess.run(
        [helm, "template", RELEASE, str(CHART), "--set", settings],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_repository_grafana_dir_links_into_the_chart(helm: str, tmp_path: Path) -> None:
    """The dashboards and rules live in the chart (a link inside a chart makes Helm warn);
    the repository's grafana/ is a relative link to them, valid in any checkout."""
    assert GRAFANA.is_dir()
    assert not GRAFANA.is_symlink()
    assert GRAFANA_LINK.is_symlink()
    assert not os.path.isabs(os.readlink(GRAFANA_LINK))
    assert GRAFANA_LINK.resolve() == GRAFANA.resolve()
    result = subprocess.run(
        [helm, "package", str(CHART), "--destination", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "symbolic link" not in result.stderr
    (archive,) = tmp_path.glob("accident-triage-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        for path in sorted((GRAFANA / "dashboards").glob("*.json")):
            member = f"accident-triage/files/grafana/dashboards/{path.name}"
            assert member in names
            extracted = tar.extractfile(member)
            assert extracted is not None
            assert extracted.read() == path.read_bytes()
    assert "accident-triage/files/grafana/prometheus/alerts.yaml" in names
    assert not any(n.endswith(".test.yaml") for n in names), "rule tests stay out (.helmignore)"
    assert not any(n.startswith("accident-triage/ci/") for n in names)


def test_helm_template_prints_no_warning(template: Template) -> None:
    result = template()
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("removed", "message"),
    [
        ("files/grafana", "the chart has no files/grafana/dashboards/*.json"),
        ("files/grafana/dashboards", "the chart has no files/grafana/dashboards/*.json"),
        ("files/grafana/prometheus", "the chart has no files/grafana/prometheus/alerts.yaml"),
    ],
)
def test_a_chart_without_its_grafana_files_fails_clearly(
    template: Template, tmp_path: Path, removed: str, message: str
) -> None:
    """A broken checkout or package (say, a link that was not followed) must not
    install a Grafana without dashboards or a Prometheus without rules."""
    chart = tmp_path / "accident-triage"
    shutil.copytree(CHART, chart)
    shutil.rmtree(chart / removed)
    result = template(chart=chart)
    assert result.returncode != 0
    assert message in result.stderr


def test_notes_tell_what_to_port_forward_and_print_no_secret(helm: str, tmp_path: Path) -> None:
    # NOTES.txt is not rendered by `helm template`: render a copy as a template.
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart, symlinks=False)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    wrapped = "notes: |\n" + "".join(
        line if line.startswith("{{-") else "  " + line for line in notes.splitlines(keepends=True)
    )
    (chart / "templates" / "zz-notes.yaml").write_text(wrapped)
    result = subprocess.run(
        [
            helm,
            "template",
            RELEASE,
            str(chart),
            "--namespace",
            NAMESPACE,
            "--show-only",
            "templates/zz-notes.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    text = yaml.safe_load(result.stdout)["notes"]
    # Local ports that do not clash with kind's port mappings (8000, 3000).
    assert f"port-forward service/{name('scorer')} 8080:80" in text
    assert f"port-forward service/{name('grafana')} 3300:3000" in text
    assert f"port-forward service/{name('prometheus')} 9090:9090" in text
    assert f"helm -n {NAMESPACE} test {RELEASE}" in text
    # It tells how to read the generated secrets; it never reads them itself.
    for function in ("lookup", "b64dec", "randAlphaNum"):
        assert function not in notes
