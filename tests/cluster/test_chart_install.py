"""The chart installed, upgraded, rolled back and uninstalled on a real control plane
(kube-apiserver with RBAC, Pod Security and ValidatingAdmissionPolicy, the controller
manager, the scheduler; kwok plays the kubelet).

What a simulated pod proves and does not: the API server validated and defaulted every
object, admission (Pod Security ``restricted``, the retrain policy) admitted it, the
scheduler placed it, the controllers (Deployment, Job, CronJob, garbage collector,
HPA and PDB objects) acted on it, and kwok reported it Running/Ready or, for a Job's
pod, Succeeded. No container runs: the images, their commands, the probes' answers,
the network and NetworkPolicy enforcement are not exercised here (the Docker smoke
test runs the images; docs/deploy.md has the table).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from core import k8s_jobs
from core.errors import RetrainAlreadyActiveError, RetrainAlreadyTriggeredError
from core.k8s_jobs import ApiError, KubeClient
from service.retrain import TRIGGER as SCORER_TRIGGER
from tests.cluster.release import (
    CHART,
    LOCAL_VALUES,
    RESTRICTED,
    ROOT,
    SCENARIOS,
    HelmError,
    Release,
    helm,
    pod_matches,
    warnings_in,
)
from tests.k8s_cluster import Cluster, prometheus_operator_crds
from tests.support import LOOPBACK, free_port, running_process

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

RELEASE = "triage"


@pytest.fixture(scope="module")
def local_release(cluster: Cluster) -> Iterator[Release]:
    """The chart as the README installs it on kind (`-f k8s/values-local.yaml`), with
    `--wait`, in a namespace that enforces the `restricted` Pod Security standard."""
    namespace = cluster.create_namespace("accident-triage", RESTRICTED)
    # The README's release name, so the objects have the names the README shows.
    release = Release(cluster, "accident-triage", namespace)
    release.install("--wait", "--timeout", "15m", values=[LOCAL_VALUES])
    yield release
    cluster.delete_namespace(namespace)


def _scorer_pods(release: Release) -> list[dict[str, Any]]:
    return release.get(
        "pods",
        selector=f"app.kubernetes.io/instance={release.name},app.kubernetes.io/component=scorer",
    )


# --- install ------------------------------------------------------------------------


def test_readme_install_with_wait_succeeds_without_a_warning(local_release: Release) -> None:
    assert local_release.install_output is not None
    assert warnings_in(local_release.install_output) == []
    status = local_release.status()
    assert status["info"]["status"] == "deployed"
    # No install hook: every object is part of the release (Flux and Argo CD see them
    # too); the only hook is `helm test`'s pod.
    manifest = helm(
        local_release.cluster, "get", "hooks", local_release.name, "-n", local_release.namespace
    ).stdout
    hooks = [doc for doc in yaml.safe_load_all(manifest) if doc]
    assert [h["metadata"]["annotations"]["helm.sh/hook"] for h in hooks] == ["test"]
    notes = status["info"]["notes"]
    assert "trains a first model" in notes
    # kind maps host port 8000 to the scorer: a port-forward must not use it.
    assert "port-forward service/accident-triage-scorer 8080:80" in notes
    assert "http://127.0.0.1:8000/docs" in notes
    assert "{.data.admin-user}" in notes and "user admin" not in notes


def test_readme_helm_test_runs_its_pod(local_release: Release) -> None:
    # In simulation the pod "succeeds" without running: this proves the hook, its pod
    # passing Pod Security `restricted`, and Helm's wait on it, not the HTTP calls.
    result = helm(
        local_release.cluster,
        "test",
        local_release.name,
        "-n",
        local_release.namespace,
        "--timeout",
        "3m",
    )
    assert "Phase:          Succeeded" in result.stdout


def test_readme_install_runs_every_workload_under_restricted_pod_security(
    local_release: Release,
) -> None:
    for deployment in local_release.objects("deployments"):
        name = deployment["metadata"]["name"]
        ready = deployment.get("status", {}).get("readyReplicas", 0)
        assert ready >= 1, f"Deployment {name} has no ready pod"
    # The first-model Job ran to completion (kwok completes Job pods).
    jobs = local_release.wait_for_jobs(
        f"app.kubernetes.io/instance={local_release.name},app.kubernetes.io/component=bootstrap"
    )
    assert len(jobs) == 1
    pods = local_release.get("pods")
    assert pods, "no pod was admitted"
    for pod in pods:
        context = pod["spec"].get("securityContext", {})
        assert context.get("runAsNonRoot") is True, pod["metadata"]["name"]


def test_the_first_model_job_is_a_plain_job_that_waits_for_storage(local_release: Release) -> None:
    (job,) = local_release.get(
        "jobs",
        selector=f"app.kubernetes.io/instance={local_release.name},app.kubernetes.io/component=bootstrap",
    )
    assert "helm.sh/hook" not in (job["metadata"].get("annotations") or {})
    spec = job["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["wait-for-storage"]
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["TRAINING_FIRST_MODEL_ONLY"] == "true"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_installs_with_atomic_under_restricted_pod_security(
    cluster: Cluster, make_namespace: Callable[..., str], scenario: str
) -> None:
    namespace = make_namespace(RESTRICTED)
    values = [CHART / "ci" / f"{scenario}-values.yaml"]
    if scenario == "external-s3":
        # The Secrets a user creates beforehand.
        for secret in ("triage-s3", "triage-s3-scorer"):
            cluster.kubectl(
                "create",
                "secret",
                "generic",
                secret,
                "-n",
                namespace,
                "--from-literal=AWS_ACCESS_KEY_ID=id",
                "--from-literal=AWS_SECRET_ACCESS_KEY=key",
            )
        cluster.kubectl(
            "create",
            "secret",
            "generic",
            "triage-scorer-api-key",
            "-n",
            namespace,
            "--from-literal=key=k",
        )
    if scenario == "kube-prometheus-stack":
        crds = prometheus_operator_crds()
        for crd in ("servicemonitors.yaml", "prometheusrules.yaml"):
            cluster.kubectl("apply", "--server-side", "-f", str(crds / crd))
        cluster.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
        )
    release = Release(cluster, RELEASE, namespace)
    result = release.install("--atomic", "--timeout", "5m", values=values)
    assert warnings_in(result) == []
    if scenario == "kube-prometheus-stack":
        # Each ServiceMonitor selects a Service of the release whose endpoints are the
        # pods that exist, on a port the Service has.
        monitors = release.objects("servicemonitors.monitoring.coreos.com")
        assert monitors
        services = release.objects("services")
        pods = release.get("pods", selector=f"app.kubernetes.io/instance={release.name}")
        for monitor in monitors:
            selected = [s for s in services if pod_matches(s, monitor["spec"]["selector"])]
            assert selected, monitor["metadata"]["name"]
            for service in selected:
                ports = {p.get("name") for p in service["spec"]["ports"]}
                assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
                backing = {"matchLabels": service["spec"]["selector"]}
                assert any(pod_matches(p, backing) for p in pods), service["metadata"]["name"]
        assert release.objects("prometheusrules.monitoring.coreos.com")


# --- selectors: HPA, PDB, NetworkPolicies, Services, ServiceMonitor ------------------


def test_hpa_pdb_services_and_network_policies_select_the_pods_that_exist(
    local_release: Release,
) -> None:
    pods = local_release.get("pods", selector=f"app.kubernetes.io/instance={local_release.name}")
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    scorer = _scorer_pods(local_release)
    assert len(scorer) >= 2, "the HPA's minimum is 2 scorer pods"

    (hpa,) = local_release.objects("horizontalpodautoscalers")
    target = hpa["spec"]["scaleTargetRef"]
    deployment = local_release.get("deployments", target["name"])
    assert target["kind"] == "Deployment"
    assert all(pod_matches(p, deployment["spec"]["selector"]) for p in scorer)

    (pdb,) = local_release.objects("poddisruptionbudgets")
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert {p["metadata"]["name"] for p in running if pod_matches(p, pdb["spec"]["selector"])} == {
        p["metadata"]["name"] for p in scorer if p["status"].get("phase") == "Running"
    }
    assert pdb["status"]["expectedPods"] == len(scorer)

    for service in local_release.objects("services"):
        selector = {"matchLabels": service["spec"]["selector"]}
        assert any(pod_matches(p, selector) for p in running), service["metadata"]["name"]

    for policy in local_release.objects("networkpolicies"):
        selected = [p for p in pods if pod_matches(p, policy["spec"]["podSelector"])]
        assert selected, f"NetworkPolicy {policy['metadata']['name']} selects no pod"


# --- RBAC under the real authorizer --------------------------------------------------


def _can(cluster: Cluster, namespace: str, account: str, verb: str, resource: str) -> bool:
    result = cluster.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        "-n",
        namespace,
        as_user=f"system:serviceaccount:{namespace}:{account}",
        check=False,
    )
    return result.stdout.strip() == "yes"


def test_rbac_matrix_of_every_service_account(local_release: Release) -> None:
    cluster, ns, full = local_release.cluster, local_release.namespace, local_release.fullname
    training_cronjob, drift_cronjob = f"{full}-training", f"{full}-drift"
    questions = [
        ("get", f"cronjobs/{training_cronjob}"),
        ("get", f"cronjobs/{drift_cronjob}"),
        ("update", f"cronjobs/{training_cronjob}"),
        ("list", "jobs"),
        ("create", "jobs"),
        ("delete", "jobs"),
        ("get", "secrets"),
        ("list", "pods"),
        ("create", "pods"),
        ("create", "pods/exec"),
        ("create", "serviceaccounts/token"),
        ("create", "rolebindings"),
        ("list", "configmaps"),
    ]
    retrain = {("get", f"cronjobs/{training_cronjob}"), ("list", "jobs"), ("create", "jobs")}
    expected = {
        f"{full}-scorer": retrain,  # values-local turns POST /retrain on
        f"{full}-drift": retrain,
        f"{full}-training": set(),
        f"{full}-prometheus": {("list", "pods")},
        "default": set(),
    }
    accounts = {sa["metadata"]["name"] for sa in local_release.get("serviceaccounts")}
    assert accounts == set(expected), "a ServiceAccount of the chart is missing from the matrix"
    for account, allowed in expected.items():
        granted = {q for q in questions if _can(cluster, ns, account, *q)}
        assert granted == allowed, account


# --- the retrain path with the drift job's own token --------------------------------


@pytest.fixture
def retrain_release(cluster: Cluster, make_namespace: Callable[..., str]) -> Release:
    """Default values with POST /retrain on; the training pods cannot be scheduled (no
    node has the label), so a retrain Job stays active as long as a test needs."""
    namespace = make_namespace(RESTRICTED)
    release = Release(cluster, RELEASE, namespace)
    release.install(
        "--wait",
        "--timeout",
        "5m",
        "--set",
        "scorer.retrain.mode=kubernetes",
        "--set",
        "training.bootstrap.enabled=false",
        "--set-string",
        "training.nodeSelector.accident-triage/never=true",
    )
    return release


def _api_for(release: Release, account: str) -> KubeClient:
    token = release.cluster.service_account_token(release.namespace, account)
    return release.cluster.api_client(token)


def _retrain_client(release: Release, account: str) -> k8s_jobs.KubeClient:
    """The retrain's own client, as a drift pod outside the cluster would build it: from
    a kubeconfig with the account's token and the cluster's CA."""
    token = release.cluster.service_account_token(release.namespace, account)
    path = release.cluster.workdir / f"{account}-{threading.get_ident()}.kubeconfig"
    return k8s_jobs.KubeClient.from_kubeconfig([release.cluster.kubeconfig_for_token(token, path)])


def _create(release: Release, api: k8s_jobs.KubeClient, key: str) -> str:
    return k8s_jobs.create_job_from_cronjob(
        release.namespace,
        f"{release.fullname}-training",
        reason="test",
        labels={k8s_jobs.TRIGGER_LABEL: "drift"},
        annotations={},
        dedupe_key=key,
        api_client=api,
    )


def test_two_racing_drift_jobs_create_exactly_one_retrain_job(retrain_release: Release) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def call() -> None:
        api = _retrain_client(retrain_release, f"{retrain_release.fullname}-drift")
        barrier.wait()
        try:
            outcomes.append(_create(retrain_release, api, "window-1"))
        except (RetrainAlreadyTriggeredError, RetrainAlreadyActiveError) as error:
            outcomes.append(type(error).__name__)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    created = [o for o in outcomes if o.startswith(retrain_release.fullname)]
    assert len(created) == 1, outcomes
    assert len(outcomes) == 2
    jobs = retrain_release.get("jobs", selector="triage/trigger=drift")
    assert [j["metadata"]["name"] for j in jobs] == created


def test_a_running_retrain_is_seen_across_a_chart_upgrade(retrain_release: Release) -> None:
    drift = f"{retrain_release.fullname}-drift"
    first = _create(retrain_release, _retrain_client(retrain_release, drift), "window-1")
    # An upgrade that changes the CronJob's template...
    retrain_release.upgrade(
        "--reuse-values", "--wait", "--timeout", "5m", "--set", "training.modelKind=random-forest"
    )
    # ...and labels that a new chart version would change (the old chart put its
    # version on the jobTemplate, and the running Job was no longer found).
    patch = {"spec": {"jobTemplate": {"metadata": {"labels": {"helm.sh/chart": "next-9.9.9"}}}}}
    retrain_release.cluster.kubectl(
        "patch",
        "cronjob",
        f"{retrain_release.fullname}-training",
        "-n",
        retrain_release.namespace,
        "--type=merge",
        "-p",
        json.dumps(patch),
    )
    with pytest.raises(RetrainAlreadyActiveError) as raised:
        _create(retrain_release, _retrain_client(retrain_release, drift), "window-2")
    assert raised.value.job_name == first


def test_the_retrain_policy_refuses_any_other_job_from_the_retrain_callers(
    retrain_release: Release,
) -> None:
    cronjob = retrain_release.get("cronjobs", f"{retrain_release.fullname}-training")
    good = k8s_jobs.job_from_cronjob(cronjob, "crafted")
    evil_image = json.loads(json.dumps(good))
    evil_image["metadata"]["name"] = "evil-image"
    evil_image["spec"]["template"]["spec"]["containers"][0]["image"] = "attacker/miner:latest"
    evil_account = json.loads(json.dumps(good))
    evil_account["metadata"]["name"] = "evil-account"
    evil_account["spec"]["template"]["spec"]["serviceAccountName"] = (
        f"{retrain_release.fullname}-drift"
    )
    evil_account["spec"]["template"]["spec"]["automountServiceAccountToken"] = True
    evil_parallel = json.loads(json.dumps(good))
    evil_parallel["metadata"]["name"] = "evil-parallel"
    evil_parallel["spec"]["parallelism"] = 50
    orphan = json.loads(json.dumps(good))
    orphan["metadata"]["name"] = "orphan"
    del orphan["metadata"]["ownerReferences"]
    jobs = f"/apis/batch/v1/namespaces/{retrain_release.namespace}/jobs"
    for account in (f"{retrain_release.fullname}-drift", f"{retrain_release.fullname}-scorer"):
        api = _api_for(retrain_release, account)
        for job in (evil_image, evil_account, evil_parallel, orphan):
            with pytest.raises(ApiError) as refused:
                api.request("POST", jobs, what="create Job", body=job)
            assert refused.value.status in (403, 422), job["metadata"]["name"]
            # The message is the API server's Status message.
            message = str(refused.value)
            assert "retrain" in message or "ValidatingAdmissionPolicy" in message
    # The CronJob's own template is admitted (the policy refuses what differs, not all).
    drift = _api_for(retrain_release, f"{retrain_release.fullname}-drift")
    drift.request("POST", jobs, what="create Job", body=good)
    # The admin is not a retrain caller: the policy does not apply to it.
    admin = retrain_release.cluster.api_client()
    admin.request("POST", jobs, what="create Job", body=evil_parallel)


@pytest.fixture
def scorer_process(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], str]]:
    """``start(env)``: the real scorer (`python -m service`) on a free loopback port,
    with an empty local registry (not ready: POST /retrain does not need a model) and
    the admin key ``test-key``; returns its base URL. Stopped after the test."""
    with contextlib.ExitStack() as stack:

        def start(extra: dict[str, str]) -> str:
            port = free_port()
            base = f"http://{LOOPBACK}:{port}"
            env = {
                **os.environ,
                "SCORER_REGISTRY_URI": str(tmp_path / "registry"),
                "SCORER_INFERENCE_LOG_ENABLED": "false",
                "SCORER_API_KEY": "test-key",
                **extra,
            }
            stack.enter_context(
                running_process(
                    [sys.executable, "-m", "service", "--host", LOOPBACK, "--port", str(port)],
                    ready_url=f"{base}/health",
                    env=env,
                    cwd=ROOT,
                )
            )
            return base

        yield start


def test_scorer_post_retrain_in_cluster_mode_creates_one_job(
    retrain_release: Release, tmp_path: Path, scorer_process: Callable[..., str]
) -> None:
    token = retrain_release.cluster.service_account_token(
        retrain_release.namespace, f"{retrain_release.fullname}-scorer"
    )
    kubeconfig = retrain_release.cluster.kubeconfig_for_token(token, tmp_path / "scorer.kubeconfig")
    base = scorer_process(
        {
            "KUBECONFIG": str(kubeconfig),
            "SCORER_RETRAIN_MODE": "kubernetes",
            "SCORER_NAMESPACE": retrain_release.namespace,
            "SCORER_TRAINING_CRONJOB": f"{retrain_release.fullname}-training",
        }
    )
    results: list[int] = []
    barrier = threading.Barrier(2)

    def call() -> None:
        barrier.wait()
        response = httpx.post(f"{base}/retrain", headers={"X-API-Key": "test-key"}, timeout=30)
        results.append(response.status_code)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [202, 409], results
    jobs = retrain_release.get("jobs", selector=f"{k8s_jobs.TRIGGER_LABEL}={SCORER_TRIGGER}")
    assert len(jobs) == 1


# --- upgrade, repair, rollback, uninstall --------------------------------------------


def test_upgrade_restarts_exactly_the_workloads_whose_config_or_secret_changed(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    release = Release(cluster, RELEASE, make_namespace(RESTRICTED))
    release.install("--wait", "--timeout", "5m")
    full = release.fullname
    secrets_before = {
        name: release.secret_data(name)
        for name in (f"{full}-s3-scorer", f"{full}-scorer-api-key", f"{full}-grafana")
    }
    before = release.pod_template_hashes()

    # Same values: nothing restarts, and no generated Secret changes.
    release.upgrade("--reuse-values", "--wait", "--timeout", "5m")
    assert release.pod_template_hashes() == before
    assert "first model" not in release.status()["info"]["notes"]
    for name, data in secrets_before.items():
        assert release.secret_data(name) == data, name

    # A scorer setting: only the scorer restarts.
    release.upgrade("--reuse-values", "--wait", "--timeout", "5m", "--set", "scorer.logLevel=DEBUG")
    after = release.pod_template_hashes()
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {f"deployments/{full}-scorer"}

    # A rotated credential (the Secret deleted, the chart generates a new one): the
    # scorer that reads it and SeaweedFS, whose identities file carries it, restart.
    cluster.kubectl("delete", "secret", f"{full}-s3-scorer", "-n", release.namespace)
    release.upgrade("--reuse-values", "--wait", "--timeout", "5m")
    rotated = release.pod_template_hashes()
    changed = {name for name in after if after[name] != rotated[name]}
    assert changed == {f"deployments/{full}-scorer", f"deployments/{full}-seaweedfs"}
    assert release.secret_data(f"{full}-s3-scorer") != secrets_before[f"{full}-s3-scorer"]


def test_an_upgrade_repairs_a_failed_first_install_and_rollback_works(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace(RESTRICTED)
    release = Release(cluster, RELEASE, namespace)
    # A quota that refuses every Job: the first install fails half-way, as one whose
    # first-model Job could not be created would.
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-jobs"},
            "spec": {"hard": {"count/jobs.batch": "0"}},
        },
        namespace=namespace,
    )
    with pytest.raises(HelmError, match="exceeded quota"):
        release.install("--wait", "--timeout", "2m")
    status = json.loads(
        helm(cluster, "status", RELEASE, "-n", release.namespace, "-o", "json").stdout
    )
    assert status["info"]["status"] == "failed"
    cluster.kubectl("delete", "resourcequota", "no-jobs", "-n", namespace)
    first_job = release.get("jobs", selector="app.kubernetes.io/component=bootstrap")

    release.upgrade("--wait", "--wait-for-jobs", "--timeout", "5m")
    status = json.loads(
        helm(cluster, "status", RELEASE, "-n", release.namespace, "-o", "json").stdout
    )
    assert status["info"]["status"] == "deployed"
    jobs = release.wait_for_jobs("app.kubernetes.io/component=bootstrap")
    # The first-model Job ran: a failed first install is repaired by an upgrade (a
    # post-install hook would never have run again).
    assert first_job == [] and len(jobs) == 1

    release.upgrade("--wait", "--timeout", "5m", "--set", "scorer.logLevel=DEBUG")
    helm(cluster, "rollback", RELEASE, "2", "-n", release.namespace, "--wait", "--timeout", "5m")
    history = json.loads(
        helm(cluster, "history", RELEASE, "-n", release.namespace, "-o", "json").stdout
    )
    assert history[-1]["status"] == "deployed" and history[-1]["revision"] == 4
    (scorer,) = [
        d for d in release.objects("deployments") if d["metadata"]["name"].endswith("-scorer")
    ]
    env = {
        e["name"]: e.get("value")
        for e in scorer["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["SCORER_LOG_LEVEL"] == "INFO"


def test_uninstall_leaves_exactly_the_storage_claim(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace(RESTRICTED)
    release = Release(cluster, RELEASE, namespace)
    release.install("--wait", "--timeout", "5m", "--set", "scorer.retrain.mode=kubernetes")
    policy_names = {
        p["metadata"]["name"]
        for p in json.loads(
            cluster.kubectl("get", "validatingadmissionpolicies", "-o", "json").stdout
        )["items"]
        if p["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == RELEASE
        and namespace in p["metadata"]["name"]
    }
    assert policy_names
    helm(cluster, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "2m")

    kinds = cluster.kubectl(
        "api-resources", "--namespaced=true", "--verbs=list", "-o", "name"
    ).stdout.split()
    left = []
    for kind in kinds:
        if kind in ("events", "events.events.k8s.io"):
            continue
        items = json.loads(
            cluster.kubectl(
                "get",
                kind,
                "-n",
                namespace,
                "-l",
                f"app.kubernetes.io/instance={RELEASE}",
                "-o",
                "json",
                check=False,
            ).stdout
            or '{"items": []}'
        )["items"]
        left += [f"{kind}/{i['metadata']['name']}" for i in items]
    assert left == [f"persistentvolumeclaims/{release.fullname}-seaweedfs"]
    remaining_policies = {
        p["metadata"]["name"]
        for p in json.loads(
            cluster.kubectl("get", "validatingadmissionpolicies", "-o", "json").stdout
        )["items"]
    }
    assert not policy_names & remaining_policies
