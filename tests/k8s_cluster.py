"""A real Kubernetes control plane for tests, on loopback ports: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok (simulated nodes and pod lifecycles),
started directly from the binaries ``.ci/build-go-tools.sh cluster`` builds.

A plain module (import it as ``tests.k8s_cluster``); the fixtures are in
``tests/cluster/conftest.py``. ``control_plane(workdir)`` yields a ready ``Cluster``:

- the API server answers ``/readyz``, with RBAC, Pod Security admission,
  ValidatingAdmissionPolicy and NodeRestriction on, as on a kind cluster;
- the controller manager has created the ``default`` ServiceAccount;
- the fake nodes (8 CPUs, 16Gi, 110 pods each) are Ready and untainted. kwok's default
  stages make every pod on them Running and Ready, and every pod owned by a Job
  Succeeded, so Deployments roll out, Jobs complete and Helm hooks finish. No container
  ever runs: there are no images, no logs, no exec, and no Service traffic;
- the default StorageClass ``standard`` provisions a PersistentVolume for every claim
  (see ``FakeProvisioner``), so claims get Bound and their pods get scheduled.

Nothing listens on anything but 127.0.0.1; every process logs to ``workdir/logs`` and
is stopped on exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.errors import RetrainError
from core.k8s_jobs import ApiError, KubeClient
from tests.support import (
    LOOPBACK,
    ServerStartError,
    free_port,
    log_tail,
    stop_process,
    wait_for_http,
)

log = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parent.parent
VERSIONS_FILE = REPOSITORY / ".ci" / "versions.env"
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubectl",
)
BUILD_COMMAND = "bash .ci/build-go-tools.sh cluster"

SERVICE_CIDR = "10.96.0.0/16"
# Pod IPs kwok hands out: the range of a kind cluster. Only ever data in pod status.
POD_CIDR = "10.244.0.1/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_VALUE = "fake"
NODE_NAMES = ("kwok-node-0", "kwok-node-1")
NODE_RESOURCES = {"cpu": "8", "memory": "16Gi", "pods": "110"}

STORAGE_CLASS = "standard"
PROVISIONER = "kwok.x-k8s.io/fake"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"

ADMIN_USER = "kubernetes-admin"
MASTERS_GROUP = "system:masters"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
# kwok plays every kubelet; it gets its own name so the audit trail and the API
# server log tell its requests apart from the tests'.
KWOK_USER = "kwok-controller"


class ClusterStartError(ServerStartError):
    """A component exited or the control plane was not ready in time; the message
    carries the end of the relevant logs (the work folder is gone by then)."""


class KubectlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr or ''}{self.output or ''}".rstrip()


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """The ``NAME=value`` lines of ``.ci/versions.env``: the build script and the
    fixture read the versions from the same place."""
    versions: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            versions[name.strip()] = value.strip().strip("\"'")
    return versions


def prometheus_operator_crds() -> Path:
    """The folder where the build script copies the ServiceMonitor and PrometheusRule
    CRDs (``servicemonitors.yaml``, ``prometheusrules.yaml``); the same defaults and
    overrides (``CRD_DIR``, ``GO_TOOLS_CACHE``) as the script."""
    if folder := os.environ.get("CRD_DIR"):
        return Path(folder)
    cache = Path(os.environ.get("GO_TOOLS_CACHE", "/var/cache/accident-triage/go-tools"))
    version = read_versions()["PROMETHEUS_OPERATOR_VERSION"]
    return cache / f"crds-prometheus-operator-{version}"


def kwok_stages() -> Path:
    """The folder where the build script copies kwok's default pod stages
    (``pod-ready.yaml``, ``pod-complete.yaml``, ``pod-delete.yaml``)."""
    cache = Path(os.environ.get("GO_TOOLS_CACHE", "/var/cache/accident-triage/go-tools"))
    return cache / f"kwok-stages-{read_versions()['KWOK_VERSION']}"


def kwok_stage_config() -> str:
    """kwok's default pod stages plus one: a pod that Helm runs for `helm test` (hook
    annotation ``test``) completes like a Job's pod, so `helm test` can pass. kwok
    replaces its defaults with any pod stage it is given, hence all of them here."""
    folder = kwok_stages()
    stages = [
        yaml.safe_load((folder / f"pod-{name}.yaml").read_text())
        for name in ("ready", "complete", "delete")
    ]
    helm_test = json.loads(json.dumps(stages[1]))
    helm_test["metadata"]["name"] = "pod-complete-helm-test"
    helm_test["spec"]["selector"]["matchExpressions"] = [
        expression
        for expression in helm_test["spec"]["selector"]["matchExpressions"]
        if expression["key"] != ".metadata.ownerReferences.[].kind"
    ] + [
        {
            "key": '.metadata.annotations["helm.sh/hook"]',
            "operator": "In",
            "values": ["test", "test-success"],
        }
    ]
    return yaml.safe_dump_all([*stages, helm_test], sort_keys=False)


def missing_binaries() -> list[str]:
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if not (kwok_stages() / "pod-complete.yaml").is_file():
        missing.append(f"kwok's pod stages ({kwok_stages()})")
    return missing


def require_control_plane_binaries() -> None:
    """Skip the calling test or fixture when a binary is missing; fail instead under CI
    (``CI`` set), where a green run must not mean "nothing was checked"."""
    missing = missing_binaries()
    if not missing:
        return
    message = (
        f"Kubernetes control plane binaries not on PATH: {', '.join(missing)}"
        f" (build them with {BUILD_COMMAND})"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def component_log_tail(path: Path, lines: int = 30) -> str:
    return log_tail(path, lines=lines, title=f"last lines of {path.name}")


@dataclass(frozen=True)
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise ClusterStartError(
                f"{self.name} exited with code {self.process.returncode}"
                f"{component_log_tail(self.log)}"
            )


@dataclass(frozen=True)
class Cluster:
    """A running control plane. ``env`` is the environment for ``kubectl``, ``helm``
    and other clients: ours, with ``KUBECONFIG`` set to the admin kubeconfig."""

    server: str
    kubeconfig: Path
    ca_file: Path
    # Out of reprs: pytest prints fixtures' reprs in failure reports.
    admin_token: str = field(repr=False)
    env: dict[str, str] = field(repr=False)
    workdir: Path
    nodes: tuple[str, ...]
    components: tuple[Component, ...]
    ready_seconds: float = field(default=0.0, compare=False)

    def kubectl(
        self,
        *args: str,
        as_user: str | None = None,
        check: bool = True,
        stdin: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl ARGS`` as the admin, or impersonating ``as_user`` (``--as``; a
        ``system:serviceaccount:NS:NAME`` user gets that account's groups too)."""
        command = ["kubectl", *args]
        if as_user is not None:
            command.append(f"--as={as_user}")
        result = subprocess.run(
            command,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, command, result.stdout, result.stderr)
        return result

    def apply(self, manifest: Mapping[str, Any] | str, *, namespace: str | None = None) -> None:
        """``kubectl apply`` of one object (a dict) or of YAML text."""
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        extra = ["--namespace", namespace] if namespace else []
        self.kubectl("apply", "-f", "-", *extra, stdin=text)

    def api_client(self, token: str | None = None) -> KubeClient:
        """A client of the API server (the admin's, or ``token``'s): the code's own
        (:class:`core.k8s_jobs.KubeClient`), so the tests need no Kubernetes client
        package either."""
        return _api_client(self.server, self.ca_file, token or self.admin_token)

    def service_account_token(
        self, namespace: str, name: str, audience: str | None = None, seconds: int = 600
    ) -> str:
        """A token for ServiceAccount ``namespace/name`` from the TokenRequest API, as
        a projected token volume would get it. Without ``audience`` it is valid for
        the API server. 600 s is the API's minimum lifetime."""
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": [audience] if audience else [], "expirationSeconds": seconds},
        }
        response = self.api_client().request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            what=f"TokenRequest for {namespace}/{name}",
            body=request,
        )
        token = (response.get("status") or {}).get("token")
        if not token:
            raise RuntimeError(f"TokenRequest for {namespace}/{name} returned no token")
        return str(token)

    def kubeconfig_for_token(self, token: str, path: Path) -> Path:
        """Write a kubeconfig that authenticates with ``token`` to ``path``."""
        write_kubeconfig(path, server=self.server, ca_file=self.ca_file, user="token", token=token)
        return path

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> str:
        """Create namespace ``name`` and wait for its ``default`` ServiceAccount: until
        the controller manager has made it, pods in the namespace are refused."""
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(labels or {})},
        }
        api = self.api_client()
        api.request("POST", "/api/v1/namespaces", what=f"create namespace {name}", body=body)
        self.wait_for(
            lambda: bool(_default_service_account(api, name)),
            f"the default ServiceAccount of namespace {name}",
        )
        return name

    def delete_namespace(self, name: str) -> None:
        """Start deleting namespace ``name``; the namespace controller and kwok finish
        it in the background."""
        with contextlib.suppress(RetrainError):
            self.api_client().request(
                "DELETE", f"/api/v1/namespaces/{name}", what=f"delete namespace {name}"
            )

    def wait_for(self, condition: Callable[[], bool], what: str, *, timeout: float = 60.0) -> None:
        """Poll ``condition`` until it holds; fail with ``what`` and the components'
        logs otherwise (a stuck object is often explained there)."""
        wait_until(condition, what, self.components, timeout=timeout, error=TimeoutError)


def write_kubeconfig(path: Path, *, server: str, ca_file: Path, user: str, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test-control-plane",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "test-control-plane",
                "context": {"cluster": "test-control-plane", "user": user},
            }
        ],
        "current-context": "test-control-plane",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def wait_until(
    condition: Callable[[], bool],
    what: str,
    components: Sequence[Component],
    *,
    timeout: float,
    error: type[Exception] = ClusterStartError,
) -> None:
    """Poll ``condition`` (errors count as "not yet"), failing as soon as a component
    dies, or after ``timeout`` seconds with ``error`` and the end of every log."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        for component in components:
            component.check_running()
        try:
            if condition():
                return
        except (OSError, RetrainError, ValueError) as failure:
            last_error = failure
        if time.monotonic() > deadline:
            tails = "".join(component_log_tail(c.log, 10) for c in components)
            cause = f" (last error: {last_error})" if last_error else ""
            raise error(f"{what}: not within {timeout:.0f} s{cause}{tails}")
        time.sleep(0.2)


def _https_ok(url: str, context: ssl.SSLContext, token: str | None = None) -> bool:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2.0, context=context) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        # /readyz answers 500 while its post-start hooks run: up, but not ready.
        return False


@dataclass(frozen=True)
class _Ports:
    etcd_client: int = field(default_factory=free_port)
    etcd_peer: int = field(default_factory=free_port)
    apiserver: int = field(default_factory=free_port)
    controller_manager: int = field(default_factory=free_port)
    scheduler: int = field(default_factory=free_port)
    kwok: int = field(default_factory=free_port)


@dataclass(frozen=True)
class _Tokens:
    admin: str = field(default_factory=lambda: secrets.token_hex(24))
    controller_manager: str = field(default_factory=lambda: secrets.token_hex(24))
    scheduler: str = field(default_factory=lambda: secrets.token_hex(24))
    kwok: str = field(default_factory=lambda: secrets.token_hex(24))

    def auth_file(self) -> str:
        """``--token-auth-file`` lines: token,user,uid,"groups"."""
        return "\n".join(
            [
                f'{self.admin},{ADMIN_USER},uid-admin,"{MASTERS_GROUP}"',
                # With --use-service-account-credentials=false every controller acts as
                # this user, and the system:kube-controller-manager role only covers
                # what the manager does itself (kubeadm gives each controller its own
                # ServiceAccount instead, which costs a token per controller at start).
                f'{self.controller_manager},{CONTROLLER_MANAGER_USER},uid-kcm,"{MASTERS_GROUP}"',
                f"{self.scheduler},{SCHEDULER_USER},uid-scheduler",
                f'{self.kwok},{KWOK_USER},uid-kwok,"{MASTERS_GROUP}"',
                "",
            ]
        )


def _write_service_account_keys(private: Path, public: Path) -> None:
    """The key pair the API server signs ServiceAccount tokens with (and the controller
    manager its legacy token Secrets): generated per cluster, never a fixed test key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _extract_serving_ca(bundle: Path, ca_file: Path) -> bool:
    """The API server's self-signed serving certificate file holds the serving
    certificate followed by the CA that signed it; clients and the ``kube-root-ca.crt``
    ConfigMaps need only that CA. False while the file is missing or half-written."""
    if not bundle.exists():
        return False
    try:
        certificates = x509.load_pem_x509_certificates(bundle.read_bytes())
    except ValueError:
        return False
    roots = [c for c in certificates if c.subject == c.issuer]
    if not roots:
        return False
    ca_file.write_bytes(roots[0].public_bytes(serialization.Encoding.PEM))
    return True


def _node(name: str) -> dict[str, Any]:
    """A Node kwok manages (selected by annotation), with the labels of a kind node.
    The status is set on create: kwok's node-initialize stage keeps the allocatable and
    capacity it finds and only adds conditions, addresses and node info."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: KWOK_NODE_VALUE},
            "labels": {
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {"allocatable": dict(NODE_RESOURCES), "capacity": dict(NODE_RESOURCES)},
    }


def _storage_class() -> dict[str, Any]:
    """The default StorageClass. Immediate binding: a claim is Bound before any pod
    uses it, which is what ``helm install --wait`` waits for."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def _default_service_account(api: KubeClient, namespace: str) -> dict[str, Any]:
    return api.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/default",
        what=f"read ServiceAccount {namespace}/default",
    )


class FakeProvisioner:
    """The external provisioner of StorageClass ``standard``, in a background thread.

    kwok's Stages can only rewrite an object's status, finalizers or delete it; they
    cannot create the PersistentVolume a claim binds to, and a claim marked Bound
    without a volume is put back to Pending by the PV controller. So, like a real
    external provisioner, this creates a hostPath PersistentVolume (never mounted: no
    container runs) of the requested size for every claim the PV controller hands to
    ``kwok.x-k8s.io/fake``, pre-bound through ``claimRef``; the PV controller then
    binds both. It deletes its Released volumes, as the reclaim policy Delete asks.
    Polling every half second keeps it simple; a watch would save nothing measurable.
    """

    def __init__(self, api: KubeClient, *, interval: float = 0.5) -> None:
        self._api = api
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-provisioner", daemon=True)
        self.last_error: Exception | None = None

    def __enter__(self) -> FakeProvisioner:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sync()
            except (RetrainError, OSError) as error:
                # The API server stopping first, or a conflict: the next round retries.
                self.last_error = error
                log.debug("fake provisioner: %s", error)

    def sync(self) -> None:
        api = self._api
        claims = api.request("GET", "/api/v1/persistentvolumeclaims", what="list claims")
        for claim in claims.get("items") or []:
            volume = _volume_for(claim)
            if volume is None:
                continue
            try:
                api.request("POST", "/api/v1/persistentvolumes", what="create PV", body=volume)
            except ApiError as error:
                if error.status != 409:  # created in an earlier round
                    raise
        volumes = api.request("GET", "/api/v1/persistentvolumes", what="list PVs")
        for volume in volumes.get("items") or []:
            meta, spec, status = (volume.get(k) or {} for k in ("metadata", "spec", "status"))
            if (
                meta.get("name")
                and (meta.get("annotations") or {}).get(PROVISIONED_BY) == PROVISIONER
                and status.get("phase") == "Released"
                and spec.get("persistentVolumeReclaimPolicy") == "Delete"
            ):
                with contextlib.suppress(RetrainError):
                    api.request(
                        "DELETE",
                        f"/api/v1/persistentvolumes/{meta['name']}",
                        what=f"delete PV {meta['name']}",
                    )


def _volume_for(claim: Mapping[str, Any]) -> dict[str, Any] | None:
    """The volume for ``claim`` if the PV controller waits for us to provision one."""
    meta, spec = claim.get("metadata") or {}, claim.get("spec") or {}
    if not meta or not spec or spec.get("volumeName") or meta.get("deletionTimestamp"):
        return None
    annotations = meta.get("annotations") or {}
    provisioner = annotations.get(
        "volume.kubernetes.io/storage-provisioner",
        annotations.get("volume.beta.kubernetes.io/storage-provisioner"),
    )
    requests = (spec.get("resources") or {}).get("requests") or {}
    if provisioner != PROVISIONER or "storage" not in requests:
        return None
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{meta['uid']}", "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": requests["storage"]},
            "accessModes": spec.get("accessModes"),
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "storageClassName": spec.get("storageClassName"),
            "persistentVolumeReclaimPolicy": "Delete",
            # Pre-bound to this claim, as external provisioners do.
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta.get("namespace"),
                "name": meta.get("name"),
                "uid": meta.get("uid"),
            },
            "hostPath": {"path": f"/var/lib/kwok-fake-volumes/{meta['uid']}"},
        },
    }


def _node_ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    # The node lifecycle controller adds not-ready taints to a new node and removes
    # them once it is Ready; pods are only scheduled freely after that.
    return ready and not (node.get("spec") or {}).get("taints")


class _Launcher:
    """Starts processes with their output in ``logs/NAME.log`` and registers their stop
    on ``stack`` (LIFO: clients stop before the API server, which stops before etcd)."""

    def __init__(self, stack: contextlib.ExitStack, workdir: Path) -> None:
        self._stack = stack
        self._logs = workdir / "logs"
        self._logs.mkdir(parents=True, exist_ok=True)
        # A minimal environment: no proxy variables that could send loopback traffic
        # elsewhere, and a HOME of our own so kwok does not read ~/.kwok/kwok.yaml.
        self._env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(workdir)}
        self.components: list[Component] = []

    def start(self, name: str, command: Sequence[str]) -> Component:
        log_path = self._logs / f"{name}.log"
        output = self._stack.enter_context(log_path.open("wb"))
        process = subprocess.Popen(
            list(command),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._env,
        )
        self._stack.callback(stop_process, process, grace=10.0)
        component = Component(name, process, log_path)
        self.components.append(component)
        return component


@dataclass(frozen=True)
class _Files:
    """Where the control plane keeps its state under the work folder."""

    workdir: Path

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def serving_cert_dir(self) -> Path:
        return self.pki / "apiserver"

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def sa_key(self) -> Path:
        return self.pki / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.pki / "sa.pub"

    @property
    def token_file(self) -> Path:
        return self.pki / "tokens.csv"

    @property
    def etcd_data(self) -> Path:
        return self.workdir / "etcd"

    def kubeconfig(self, component: str) -> Path:
        return self.workdir / "kubeconfig" / f"{component}.yaml"

    @property
    def kwok_config(self) -> Path:
        return self.workdir / "kwok-stages.yaml"


def _prepare(files: _Files, server: str, tokens: _Tokens) -> None:
    """Keys, the token file and a kubeconfig per client. The kubeconfigs name the CA
    file the API server's certificate is extracted to; no client starts before that."""
    files.serving_cert_dir.mkdir(parents=True)
    _write_service_account_keys(files.sa_key, files.sa_pub)
    files.token_file.write_text(tokens.auth_file())
    files.token_file.chmod(0o600)
    for component, user, token in (
        ("admin", ADMIN_USER, tokens.admin),
        ("controller-manager", CONTROLLER_MANAGER_USER, tokens.controller_manager),
        ("scheduler", SCHEDULER_USER, tokens.scheduler),
        ("kwok", KWOK_USER, tokens.kwok),
    ):
        write_kubeconfig(
            files.kubeconfig(component),
            server=server,
            ca_file=files.ca_file,
            user=user,
            token=token,
        )
    files.etcd_data.mkdir(mode=0o700)
    files.kwok_config.write_text(kwok_stage_config())


def _etcd_command(files: _Files, ports: _Ports) -> list[str]:
    client_url = f"http://{LOOPBACK}:{ports.etcd_client}"
    peer_url = f"http://{LOOPBACK}:{ports.etcd_peer}"
    return [
        "etcd",
        "--name=control-plane",
        f"--data-dir={files.etcd_data}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=control-plane={peer_url}",
        "--initial-cluster-state=new",
        # Throw-away data: fsync would only make every write wait for the disk.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def _apiserver_command(files: _Files, ports: _Ports) -> list[str]:
    return [
        "kube-apiserver",
        f"--etcd-servers=http://{LOOPBACK}:{ports.etcd_client}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={ports.apiserver}",
        # No --tls-cert-file: the server generates a self-signed serving certificate
        # (and the CA that signs it) in this folder, valid for 127.0.0.1.
        f"--cert-dir={files.serving_cert_dir}",
        "--authorization-mode=Node,RBAC",
        # The default plugins (PodSecurity, ValidatingAdmissionPolicy, DefaultStorageClass,
        # ServiceAccount, ...) plus the one kubeadm, and so kind, adds.
        "--enable-admission-plugins=NodeRestriction",
        # As kubeadm and kind: privileged pods are the Pod Security admission's call, per
        # namespace, rather than refused everywhere.
        "--allow-privileged=true",
        f"--token-auth-file={files.token_file}",
        f"--service-account-key-file={files.sa_pub}",
        f"--service-account-signing-key-file={files.sa_key}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # The `kubernetes` Service's endpoints would be the advertise address, and
        # Endpoints may not hold a loopback address: the reconciler would fail every
        # 10 s. No Service is reachable here anyway.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
    ]


def _controller_manager_command(files: _Files, ports: _Ports) -> list[str]:
    return [
        "kube-controller-manager",
        f"--kubeconfig={files.kubeconfig('controller-manager')}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={ports.controller_manager}",
        "--leader-elect=false",
        "--controllers=*",
        "--use-service-account-credentials=false",
        f"--service-account-private-key-file={files.sa_key}",
        # Published as the kube-root-ca.crt ConfigMap of every namespace, which projected
        # ServiceAccount token volumes carry as ca.crt.
        f"--root-ca-file={files.ca_file}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allocate-node-cidrs=false",
        "--profiling=false",
    ]


def _scheduler_command(files: _Files, ports: _Ports) -> list[str]:
    return [
        "kube-scheduler",
        f"--kubeconfig={files.kubeconfig('scheduler')}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={ports.scheduler}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def _kwok_command(files: _Files, ports: _Ports) -> list[str]:
    # kwok's default pod stages (pods Running and Ready, pods owned by a Job Succeeded,
    # deleted pods removed) and a `helm test` pod completing; with HOME in the work
    # folder it reads no ~/.kwok/kwok.yaml either.
    return [
        "kwok",
        f"--kubeconfig={files.kubeconfig('kwok')}",
        f"--config={files.kwok_config}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}={KWOK_NODE_VALUE}",
        f"--server-address={LOOPBACK}:{ports.kwok}",
        f"--cidr={POD_CIDR}",
        # The nodes' InternalIP and the pods' hostIP: should anything dial a node, it
        # stays on loopback.
        f"--node-ip={LOOPBACK}",
        # Node leases renewed as a kubelet does. Also, in v0.7.0 a duration of 0 selects
        # the 10-minute status heartbeat, and the node lifecycle controller would mark
        # the nodes NotReady after 50 s.
        "--node-lease-duration-seconds=40",
    ]


@contextlib.contextmanager
def control_plane(workdir: Path, *, timeout: float = 120.0) -> Iterator[Cluster]:
    """Start a control plane with its files in ``workdir`` (which the caller removes),
    wait until it is ready, yield it, and stop every process on exit. ``timeout``
    bounds each wait, so a broken start fails rather than hangs."""
    started = time.monotonic()
    files = _Files(workdir)
    ports = _Ports()
    tokens = _Tokens()
    server = f"https://{LOOPBACK}:{ports.apiserver}"
    _prepare(files, server, tokens)

    with contextlib.ExitStack() as stack:
        launcher = _Launcher(stack, workdir)
        etcd = launcher.start("etcd", _etcd_command(files, ports))
        wait_for_http(
            f"http://{LOOPBACK}:{ports.etcd_client}/health",
            process=etcd.process,
            log=etcd.log,
            timeout=timeout,
        )
        apiserver = launcher.start("kube-apiserver", _apiserver_command(files, ports))
        wait_until(
            lambda: _extract_serving_ca(files.serving_cert_dir / "apiserver.crt", files.ca_file),
            "the API server's serving certificate",
            [etcd, apiserver],
            timeout=timeout,
        )
        verified = ssl.create_default_context(cafile=str(files.ca_file))
        wait_until(
            lambda: _https_ok(f"{server}/readyz", verified, tokens.admin),
            "the API server's /readyz",
            [etcd, apiserver],
            timeout=timeout,
        )

        launcher.start("kube-controller-manager", _controller_manager_command(files, ports))
        scheduler = launcher.start("kube-scheduler", _scheduler_command(files, ports))
        kwok = launcher.start("kwok", _kwok_command(files, ports))
        components = tuple(launcher.components)

        # While those start: the objects a kind cluster comes with.
        admin = _api_client(server, files.ca_file, tokens.admin)
        for name in NODE_NAMES:
            admin.request("POST", "/api/v1/nodes", what=f"create node {name}", body=_node(name))
        admin.request(
            "POST",
            "/apis/storage.k8s.io/v1/storageclasses",
            what="create the StorageClass",
            body=_storage_class(),
        )
        # KubeClient opens a connection per request: the thread can share it.
        stack.enter_context(FakeProvisioner(admin))

        wait_for_http(
            f"http://{LOOPBACK}:{ports.kwok}/healthz",
            process=kwok.process,
            log=kwok.log,
            timeout=timeout,
        )
        # The scheduler serves a self-signed certificate it keeps in memory: nothing to
        # verify a liveness probe against, nor a need to, on loopback, to our own child.
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        wait_until(
            lambda: _https_ok(f"https://{LOOPBACK}:{ports.scheduler}/healthz", unverified),
            "kube-scheduler's /healthz",
            [scheduler],
            timeout=timeout,
        )
        wait_until(
            lambda: bool(_default_service_account(admin, "default")),
            "the default ServiceAccount (kube-controller-manager)",
            components,
            timeout=timeout,
        )
        wait_until(
            lambda: all(
                _node_ready(admin.request("GET", f"/api/v1/nodes/{name}", what=f"read {name}"))
                for name in NODE_NAMES
            ),
            f"nodes {', '.join(NODE_NAMES)} Ready and untainted (kwok)",
            components,
            timeout=timeout,
        )

        env = dict(os.environ)
        env["KUBECONFIG"] = str(files.kubeconfig("admin"))
        # kubectl's discovery cache is per server address, and every run has a new port.
        env["KUBECACHEDIR"] = str(workdir / "kube-cache")
        yield Cluster(
            server=server,
            kubeconfig=files.kubeconfig("admin"),
            ca_file=files.ca_file,
            admin_token=tokens.admin,
            env=env,
            workdir=workdir,
            nodes=NODE_NAMES,
            components=components,
            ready_seconds=time.monotonic() - started,
        )


def _api_client(server: str, ca_file: Path, token: str) -> KubeClient:
    context = ssl.create_default_context(cafile=str(ca_file))
    return KubeClient(server, token=token, ssl_context=context)
