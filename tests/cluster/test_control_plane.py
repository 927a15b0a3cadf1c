"""The cluster fixture itself: the versions, the processes, and the behaviours the
chart tests rely on (rollouts, Jobs, Pod Security, RBAC, admission policies, volumes,
the prometheus-operator CRDs)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from core.k8s_jobs import ApiError
from tests.k8s_cluster import (
    NODE_RESOURCES,
    STORAGE_CLASS,
    Cluster,
    prometheus_operator_crds,
    read_versions,
    require_control_plane_binaries,
)

pytestmark = pytest.mark.cluster

# Never pulled: kwok runs no containers. A real image name keeps the objects realistic.
IMAGE = "registry.k8s.io/pause:3.10"


def _get(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def _container(name: str = "main", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": IMAGE,
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        **extra,
    }


def _pod(name: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [_container(**container)]},
    }


def _condition(obj: dict[str, Any], kind: str) -> str | None:
    for condition in obj.get("status", {}).get("conditions", []):
        if condition["type"] == kind:
            return str(condition["status"])
    return None


# --- the fixture's own contract -------------------------------------------------------


def test_without_the_binaries_the_cluster_tests_skip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"kube-apiserver.*build-go-tools\.sh"):
        require_control_plane_binaries()


def test_without_the_binaries_the_cluster_tests_fail_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="kube-apiserver"):
        require_control_plane_binaries()


def test_the_server_and_kubectl_are_the_pinned_kubernetes_version(cluster: Cluster) -> None:
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    expected = read_versions()["KUBERNETES_VERSION"]
    assert expected == "v1.34.4"
    assert versions["serverVersion"]["gitVersion"] == expected
    assert versions["clientVersion"]["gitVersion"] == expected


def test_the_control_plane_is_ready_within_a_minute(cluster: Cluster) -> None:
    assert 0 < cluster.ready_seconds <= 60


def _listening_tcp(pids: Iterable[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every listening TCP socket of ``pids``, from /proc: the
    same facts as ``ss -ltnp``, without needing iproute2."""
    owners: dict[int, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed since listed
            if target.startswith("socket:["):
                owners[int(target[len("socket:[") : -1])] = pid
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state != "0A" or inode not in owners:  # 0A: LISTEN
                continue
            address_hex, port_hex = local.split(":")
            raw = bytes.fromhex(address_hex)
            # The kernel prints each 32-bit word of the address in host (little) order.
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((owners[inode], socket.inet_ntop(family, packed), int(port_hex, 16)))
    return found


def test_every_process_listens_on_loopback_only(cluster: Cluster) -> None:
    pids = {component.process.pid: component.name for component in cluster.components}
    sockets = _listening_tcp(pids)
    listening = {(pids[pid], address, port) for pid, address, port in sockets}
    assert {name for name, _, _ in listening} == set(pids.values()), listening
    assert all(address == "127.0.0.1" for _, address, _ in listening), listening
    assert f"127.0.0.1:{cluster.server.rsplit(':', 1)[1]}" in {
        f"{address}:{port}" for _, address, port in listening
    }


def test_the_fake_nodes_have_the_announced_shape(cluster: Cluster) -> None:
    nodes = _get(cluster, "nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted(cluster.nodes)
    for node in nodes:
        assert node["status"]["allocatable"] == NODE_RESOURCES
        assert node["metadata"]["labels"]["kubernetes.io/os"] == "linux"
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert not node["spec"].get("taints")
        assert _condition(node, "Ready") == "True"


# --- workloads ---------------------------------------------------------------------------


def test_a_deployments_pods_become_ready_on_the_fake_nodes(
    cluster: Cluster, namespace: str
) -> None:
    labels = {"app": "web"}
    cluster.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [_container()]},
                },
            },
        },
        namespace=namespace,
    )
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=60s")
    pods = _get(cluster, "pods", "-n", namespace, "-l", "app=web")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"] in cluster.nodes
        assert pod["status"]["phase"] == "Running"
        assert _condition(pod, "Ready") == "True"


def test_a_job_completes(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "once"},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [_container()]},
                },
            },
        },
        namespace=namespace,
    )
    cluster.kubectl(
        "wait", "--for=condition=Complete", "job/once", "-n", namespace, "--timeout=60s"
    )
    job = _get(cluster, "job/once", "-n", namespace)
    assert job["status"]["succeeded"] == 1
    assert not job["status"].get("failed")


# --- admission and authorization ---------------------------------------------------------


def test_pod_security_restricted_rejects_a_privileged_pod_and_admits_a_compliant_one(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace(labels={"pod-security.kubernetes.io/enforce": "restricted"})
    privileged = _pod("privileged", securityContext={"privileged": True})
    refused = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=json.dumps(privileged), check=False
    )
    assert refused.returncode != 0
    # The Pod Security admission's verdict, not --allow-privileged's.
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr
    assert "privileged" in refused.stderr

    compliant = _pod(
        "restricted",
        securityContext={
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    )
    cluster.apply(compliant, namespace=namespace)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pod/restricted", "-n", namespace, "--timeout=60s"
    )


def test_rbac_denies_a_service_account_without_a_role(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    user = f"system:serviceaccount:{namespace}:nobody"

    def can_list_pods() -> str:
        result = cluster.kubectl(
            "auth", "can-i", "list", "pods", "-n", namespace, as_user=user, check=False
        )
        return result.stdout.strip()

    assert can_list_pods() == "no"

    token = cluster.service_account_token(namespace, "nobody")
    pods = f"/api/v1/namespaces/{namespace}/pods"
    with pytest.raises(ApiError) as denied:
        cluster.api_client(token).request("GET", pods, what="list pods")
    # 403, not 401: the token authenticates, and RBAC says no.
    assert denied.value.status == 403
    kubeconfig = cluster.kubeconfig_for_token(token, tmp_path / "nobody.yaml")
    result = cluster.kubectl(
        "--kubeconfig", str(kubeconfig), "get", "pods", "-n", namespace, check=False
    )
    assert result.returncode != 0
    assert "Forbidden" in result.stderr

    # With a Role the same token may list pods: the refusals above were RBAC's.
    cluster.kubectl(
        "create", "role", "pod-reader", "--verb=list", "--resource=pods", "-n", namespace
    )
    cluster.kubectl(
        "create",
        "rolebinding",
        "nobody-reads-pods",
        "--role=pod-reader",
        f"--serviceaccount={namespace}:nobody",
        "-n",
        namespace,
    )
    # The authorizer sees new bindings through an informer: a moment later.
    cluster.wait_for(lambda: can_list_pods() == "yes", "the RoleBinding in force", timeout=30)
    assert cluster.api_client(token).request("GET", pods, what="list pods")["items"] == []


def test_a_validating_admission_policy_rejects_an_object_that_violates_it(
    cluster: Cluster, namespace: str
) -> None:
    name = f"max-replicas-{namespace}"
    message = "at most 3 replicas here"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["deployments"],
                    }
                ]
            },
            "validations": [{"expression": "object.spec.replicas <= 3", "message": message}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            # Cluster-scoped objects: keep the policy to this test's namespace.
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }

    def deployment(replicas: int) -> str:
        labels = {"app": "capped"}
        return json.dumps(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "capped"},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [_container()]},
                    },
                },
            }
        )

    def create(replicas: int, *extra: str) -> Any:
        return cluster.kubectl(
            "create", "-n", namespace, "-f", "-", *extra, stdin=deployment(replicas), check=False
        )

    try:
        cluster.apply(policy)
        cluster.apply(binding)
        # Policies reach the admission plugin through an informer; a server-side dry
        # run goes through admission without creating anything.
        cluster.wait_for(
            lambda: create(5, "--dry-run=server").returncode != 0,
            "the ValidatingAdmissionPolicy in force",
            timeout=30,
        )
        refused = create(5)
        assert refused.returncode != 0
        assert f"ValidatingAdmissionPolicy '{name}'" in refused.stderr
        assert message in refused.stderr
        assert create(3).returncode == 0
    finally:
        cluster.kubectl(
            "delete",
            f"validatingadmissionpolicybinding/{name}",
            f"validatingadmissionpolicy/{name}",
            "--ignore-not-found",
        )


# --- storage and CRDs ---------------------------------------------------------------------


def test_a_claim_in_the_default_storage_class_is_bound_and_usable(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            # No storageClassName: the default class's admission plugin fills it in.
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "3Gi"}},
            },
        },
        namespace=namespace,
    )
    cluster.kubectl(
        "wait",
        "--for=jsonpath={.status.phase}=Bound",
        "pvc/data",
        "-n",
        namespace,
        "--timeout=60s",
    )
    claim = _get(cluster, "pvc/data", "-n", namespace)
    assert claim["spec"]["storageClassName"] == STORAGE_CLASS
    assert claim["status"]["capacity"]["storage"] == "3Gi"
    volume = claim["spec"]["volumeName"]

    pod = _pod("uses-data", volumeMounts=[{"name": "data", "mountPath": "/data"}])
    pod["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    cluster.apply(pod, namespace=namespace)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pod/uses-data", "-n", namespace, "--timeout=60s"
    )

    # Reclaim policy Delete: the volume goes with its claim.
    cluster.kubectl("delete", "pod/uses-data", "pvc/data", "-n", namespace, "--wait=true")
    cluster.kubectl("wait", "--for=delete", f"pv/{volume}", "--timeout=60s")


def test_the_servicemonitor_crd_applies_and_a_servicemonitor_is_accepted(
    cluster: Cluster, namespace: str
) -> None:
    crd = prometheus_operator_crds() / "servicemonitors.yaml"
    assert crd.is_file(), f"{crd} is missing (bash .ci/build-go-tools.sh cluster copies it)"
    # Server-side: the CRD is too large for the last-applied annotation of a client apply.
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/servicemonitors.monitoring.coreos.com",
        "--timeout=60s",
    )

    monitor: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "scorer", "labels": {"release": "kube-prometheus-stack"}},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "scorer"}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        },
    }
    cluster.apply(monitor, namespace=namespace)
    stored = _get(cluster, "servicemonitor/scorer", "-n", namespace)
    assert stored["spec"]["endpoints"][0]["port"] == "http"

    # The CRD's schema is enforced, so a chart's typo fails here as it would in a cluster.
    monitor["metadata"]["name"] = "broken"
    monitor["spec"]["endpoints"] = [{"port": "http", "interval": "every 15 seconds"}]
    refused = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=json.dumps(monitor), check=False
    )
    assert refused.returncode != 0
    assert "interval" in refused.stderr
