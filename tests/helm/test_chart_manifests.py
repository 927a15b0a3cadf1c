"""Assertions on the rendered manifests of every ``ci/*-values.yaml`` scenario: probes,
resources, security contexts, autoscaling, RBAC, labels, references and images."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart import (
    CHART,
    GRAFANA,
    NAMESPACE,
    RELEASE,
    Rendered,
    chart_app_version,
    name,
    pod_labels,
    pod_spec,
)

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


def expected_images(values: dict[str, Any]) -> dict[str, str]:
    def ref(image: dict[str, Any]) -> str:
        if image.get("digest"):
            return f"{image['repository']}@{image['digest']}"
        return f"{image['repository']}:{image.get('tag') or chart_app_version()}"

    return {
        "scorer": ref(values["scorer"]["image"]),
        "jobs": ref(values["jobsImage"]),
        "minio": ref(values["minio"]["image"]),
        "prometheus": ref(values["prometheus"]["image"]),
        "pushgateway": ref(values["pushgateway"]["image"]),
        "grafana": ref(values["grafana"]["image"]),
    }


def test_every_image_reference_comes_from_the_values(scenario: Rendered) -> None:
    allowed = expected_images(scenario.values)
    used = {container["image"] for _, container in scenario.containers()}
    assert used <= set(allowed.values()), used - set(allowed.values())
    assert allowed["scorer"] in used
    assert allowed["jobs"] in used


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
    assert scorer_env["SCORER_RETRAIN_CRONJOB"] == name("training")
    assert scorer_env["SCORER_RETRAIN_NAMESPACE"] == NAMESPACE
    rendered.get("CronJob", name("training"))


# --- references ------------------------------------------------------------------------


def external_secrets(values: dict[str, Any]) -> set[str]:
    """Secrets the user provides (existingSecret values); everything else is rendered."""
    return {
        s
        for s in (
            values["storage"]["external"]["existingSecret"],
            values["minio"]["auth"]["existingSecret"],
            values["scorer"]["apiKey"]["existingSecret"],
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
        for container in spec["containers"]:
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
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TRAINING_REGISTRY_URI"].startswith("s3://")
    assert env["TRAINING_RAW_URI"] == scenario.values["training"]["rawUri"]


def test_bootstrap_job_is_a_post_install_hook_after_the_bucket(scenario: Rendered) -> None:
    job = scenario.get("Job", name("bootstrap"))
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install"
    container = pod_spec(job)["containers"][0]
    bootstrap = scenario.values["training"]["bootstrap"]
    if bootstrap["source"] == "synthetic":
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["TRAINING_RAW_URI"] == (
            f"synthetic://?accidents={bootstrap['accidents']}&seed={bootstrap['seed']}"
        )
    else:
        assert f"download --year {bootstrap['baacYear']}" in container["command"][-1]
    if scenario.values["minio"]["enabled"]:
        bucket = scenario.get("Job", name("bucket"))
        weight = int(bucket["metadata"]["annotations"]["helm.sh/hook-weight"])
        assert weight < int(annotations["helm.sh/hook-weight"])
    else:
        assert name("bucket") not in scenario.names("Job")


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


@pytest.mark.parametrize("version", ["1.29.0", "1.33.0"])
def test_renders_for_each_supported_kubernetes_version(
    render: Callable[..., Rendered], version: str
) -> None:
    assert render("default", f"--kube-version={version}").kinds("Deployment")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("training.enabled=false", "drift.retrain.mode=kubernetes creates Jobs"),
        (
            "training.enabled=false,drift.retrain.mode=disabled,scorer.retrain.mode=kubernetes",
            "scorer.retrain.mode=kubernetes creates Jobs",
        ),
        ("minio.enabled=false", "set storage.external.endpoint"),
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


def test_chart_links_grafana_dir_instead_of_copying_it(helm: str, tmp_path: Path) -> None:
    link = CHART / "files" / "grafana"
    assert link.is_symlink()
    assert link.resolve() == GRAFANA.resolve()
    # `helm package` follows the link: the packaged chart holds the files themselves.
    result = subprocess.run(
        [helm, "package", str(CHART), "--destination", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
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
    assert f"port-forward service/{name('scorer')} 8000:80" in text
    assert f"port-forward service/{name('grafana')} 3000:3000" in text
    assert f"port-forward service/{name('prometheus')} 9090:9090" in text
    assert f"helm -n {NAMESPACE} test {RELEASE}" in text
    # It tells how to read the generated secrets; it never reads them itself.
    for function in ("lookup", "b64dec", "randAlphaNum"):
        assert function not in notes
