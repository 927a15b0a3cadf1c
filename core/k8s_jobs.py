"""Starting a training run in the cluster: a Job made from the training CronJob.

:func:`job_from_cronjob` builds the Job the way ``kubectl create job --from=cronjob/X``
does (kubectl's ``createJobFromCronJob``), as plain data so it can be validated
against the Kubernetes schema without a cluster. :func:`create_job_from_cronjob` reads
the CronJob, refuses when one of its Jobs is still active, and creates the Job under a
deterministic name, so two concurrent callers create one Job: the second gets HTTP 409
AlreadyExists from the API server, which is the lock.

Both the drift job and the scorer's ``POST /retrain`` call :func:`create_job_from_cronjob`.
It talks to the API server through :class:`KubeClient`, three JSON requests over the
standard library's ``http.client``: no Kubernetes client package in the images.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import http.client
import json
import logging
import os
import re
import ssl
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from core.errors import RetrainAlreadyActiveError, RetrainAlreadyTriggeredError, RetrainError

log = logging.getLogger(__name__)

INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"
# The scorer's POST /retrain labels its Jobs with the same prefix.
LABEL_PREFIX = "triage/"
TRIGGER_LABEL = LABEL_PREFIX + "trigger"
REASON_ANNOTATION = LABEL_PREFIX + "retrain-reason"

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVICE_ACCOUNT_NAMESPACE = SERVICE_ACCOUNT_DIR / "namespace"
USER_AGENT = "accident-triage-retrain"
DEFAULT_TIMEOUT_SECONDS = 30.0
# kubeconfig fields that name files, relative to the kubeconfig that names them.
_FILE_FIELDS = ("certificate-authority", "client-certificate", "client-key", "tokenFile")

# Pods of a Job carry its name in the `job-name` label, whose values are limited to 63
# characters; the CronJob controller keeps 11 of them for its suffix, and so do we.
_MAX_NAME = 63
_DIGEST_LENGTH = 10
_TERMINAL_CONDITIONS = frozenset({"Complete", "Failed", "FailureTarget", "SuccessCriteriaMet"})


def job_name(cronjob_name: str, dedupe_key: str) -> str:
    """``<cronjob>-<digest of the key>``: the same key always gives the same name,
    which is what makes a second creation fail with AlreadyExists."""
    digest = hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()[:_DIGEST_LENGTH]
    base = cronjob_name[: _MAX_NAME - _DIGEST_LENGTH - 1].rstrip("-.")
    return f"{base}-{digest}"


def job_from_cronjob(
    cronjob: Mapping[str, Any],
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Job ``kubectl create job NAME --from=cronjob/...`` would create, plus our
    labels and annotations.

    As kubectl: the template's labels, the template's annotations over
    ``cronjob.kubernetes.io/instantiate: manual``, the template's spec unchanged, and a
    controller owner reference to the CronJob without ``blockOwnerDeletion`` (setting
    it would require RBAC on ``cronjobs/finalizers``, which kubectl avoids too).
    """
    template = cronjob.get("spec", {}).get("jobTemplate")
    if not template or not template.get("spec"):
        raise RetrainError(f"CronJob {cronjob.get('metadata', {}).get('name')} has no jobTemplate")
    template_metadata = template.get("metadata") or {}
    metadata = cronjob.get("metadata", {})
    job_labels = {**(template_metadata.get("labels") or {}), **(labels or {})}
    job_annotations = {
        INSTANTIATE_ANNOTATION: "manual",
        **(template_metadata.get("annotations") or {}),
        **(annotations or {}),
    }
    job_metadata: dict[str, Any] = {"name": name}
    if metadata.get("namespace"):
        job_metadata["namespace"] = metadata["namespace"]
    if job_labels:
        job_metadata["labels"] = job_labels
    job_metadata["annotations"] = job_annotations
    job_metadata["ownerReferences"] = [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": metadata.get("name"),
            "uid": metadata.get("uid"),
            "controller": True,
        }
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_metadata,
        "spec": copy.deepcopy(template["spec"]),
    }


def is_active(job: Mapping[str, Any]) -> bool:
    """A Job without a terminal condition is still running (or about to start: a Job
    created a moment ago has no status yet, and counts as active)."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") in _TERMINAL_CONDITIONS and condition.get("status") == "True":
            return False
    return not status.get("completionTime")


def owned_by(job: Mapping[str, Any], cronjob: Mapping[str, Any]) -> bool:
    uid = cronjob.get("metadata", {}).get("uid")
    references = job.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("kind") == "CronJob" and ref.get("uid") == uid for ref in references)


def pod_namespace() -> str | None:
    """The pod's own namespace (from its service account), or None outside a pod."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


def current_namespace(default: str = "default") -> str:
    """The pod's own namespace (from its service account), else ``default``."""
    return pod_namespace() or default


class ApiError(RetrainError):
    """The API server answered with an error status; ``message`` is its Status message."""

    def __init__(self, what: str, status: int, message: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {message}")
        self.status = status


class KubeClient:
    """Just enough of a Kubernetes API client for the retrain: JSON requests over HTTPS
    with a bearer token or a client certificate, from the standard library only, so the
    scorer's image carries no Kubernetes client package (76 MiB with its dependencies).

    One connection per request: a retrain makes three, and a client can then be shared
    by threads. ``token_file`` is read on every request, as the kubelet rotates the
    projected service-account token under a running pod.
    """

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        parts = urlsplit(server)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise RetrainError(f"Kubernetes API server URL {server!r} is not http(s)://host[:port]")
        self.server = server
        self._parts = parts
        self._token = token
        self._token_file = token_file
        self._ssl_context = ssl_context
        self._timeout = timeout

    @classmethod
    def in_cluster(
        cls,
        environ: Mapping[str, str] | None = None,
        account_dir: Path = SERVICE_ACCOUNT_DIR,
    ) -> KubeClient:
        """The pod's own service account, as client-go's ``InClusterConfig``: the API
        server from ``KUBERNETES_SERVICE_HOST``/``_PORT``, the token and CA mounted under
        ``account_dir``. Raises :class:`NoCredentialsError` outside a pod."""
        env = os.environ if environ is None else environ
        host = env.get("KUBERNETES_SERVICE_HOST")
        port = env.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise NoCredentialsError("KUBERNETES_SERVICE_HOST/PORT are not set")
        token_file = account_dir / "token"
        ca_file = account_dir / "ca.crt"
        for path in (token_file, ca_file):
            if not path.is_file():
                raise NoCredentialsError(f"{path} does not exist")
        host = f"[{host}]" if ":" in host else host
        with _unusable_credentials(str(ca_file)):
            context = ssl.create_default_context(cafile=str(ca_file))
        return cls(f"https://{host}:{port}", token_file=token_file, ssl_context=context)

    @classmethod
    def from_kubeconfig(cls, paths: Sequence[Path], context: str | None = None) -> KubeClient:
        """The current (or named) context of a kubeconfig, merged over ``paths`` as
        kubectl merges ``KUBECONFIG`` (the first file to set a name wins): the server,
        its CA (file or data, or ``insecure-skip-tls-verify``), and the user's token,
        token file, client certificate (file or data) or ``exec`` credential plugin."""
        config = _merged_kubeconfig(paths)
        name = context or config["current-context"]
        if not name:
            raise NoCredentialsError(f"kubeconfig {_joined(paths)} has no current-context")
        context_entry = _named(config, "contexts", "context", name, paths)
        cluster = _named(config, "clusters", "cluster", context_entry.get("cluster"), paths)
        user = _named(config, "users", "user", context_entry.get("user"), paths, optional=True)
        server = cluster.get("server")
        if not server:
            raise NoCredentialsError(f"cluster of context {name!r} has no server")
        if user.get("exec"):
            user = {**user, **_exec_credential(user["exec"], server)}
        ssl_context = None
        if server.startswith("https"):
            with _unusable_credentials(f"the TLS settings of context {name!r}"):
                ssl_context = _kubeconfig_ssl_context(cluster, user)
        return cls(
            server,
            token=user.get("token"),
            token_file=Path(user["tokenFile"]) if user.get("tokenFile") else None,
            ssl_context=ssl_context,
        )

    def request(self, method: str, path: str, *, what: str, body: Any = None) -> dict[str, Any]:
        """One request, its JSON answer parsed. Raises :class:`ApiError` on an error
        status and :class:`RetrainError` when the server cannot be reached or does not
        answer JSON; ``what`` names the operation in the message."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        token = self._current_token(what)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        connection = self._connection()
        try:
            connection.request(
                method, self._parts.path.rstrip("/") + path, body=data, headers=headers
            )
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise RetrainError(
                f"{what}: API server {self.server} unreachable ({_one_line(error)})"
            ) from error
        finally:
            connection.close()
        if response.status >= HTTPStatus.BAD_REQUEST:
            raise ApiError(what, response.status, _status_message(payload, response.reason))
        try:
            answer = json.loads(payload)
        except ValueError as error:
            raise RetrainError(f"{what}: the API server's answer is not JSON") from error
        if not isinstance(answer, dict):
            raise RetrainError(f"{what}: the API server's answer is not a JSON object")
        return answer

    def _connection(self) -> http.client.HTTPConnection:
        host, port = self._parts.hostname or "", self._parts.port
        if self._parts.scheme == "http":
            return http.client.HTTPConnection(host, port, timeout=self._timeout)
        return http.client.HTTPSConnection(
            host, port, timeout=self._timeout, context=self._ssl_context
        )

    def _current_token(self, what: str) -> str | None:
        if self._token_file is None:
            return self._token
        try:
            return self._token_file.read_text().strip() or self._token
        except OSError as error:
            raise RetrainError(f"{what}: cannot read the token ({_one_line(error)})") from error


class NoCredentialsError(RetrainError):
    """Neither a pod's service account nor a usable kubeconfig."""


def kubeconfig_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    """``KUBECONFIG`` (a path list, as kubectl reads it), else ``~/.kube/config``."""
    env = os.environ if environ is None else environ
    listed = [Path(p) for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    return listed or [Path.home() / ".kube" / "config"]


def cluster_api_client() -> KubeClient:
    """A client from the pod's service account, or from the kubeconfig outside a
    cluster (``KUBECONFIG``, else ``~/.kube/config``)."""
    try:
        return KubeClient.in_cluster()
    except NoCredentialsError as not_in_pod:
        try:
            return KubeClient.from_kubeconfig(kubeconfig_paths())
        except NoCredentialsError as error:
            raise NoCredentialsError(
                f"no Kubernetes credentials: not in a pod with a service account "
                f"({not_in_pod}) and no usable kubeconfig ({error})"
            ) from error


@contextlib.contextmanager
def _unusable_credentials(what: str) -> Iterator[None]:
    """A CA or client certificate that cannot be read or parsed: one line naming it."""
    try:
        yield
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError; bad base64 a ValueError
        raise NoCredentialsError(f"{what}: {_one_line(error)}") from error


def _merged_kubeconfig(paths: Sequence[Path]) -> dict[str, Any]:
    merged: dict[str, Any] = {"current-context": None, "contexts": [], "clusters": [], "users": []}
    found = False
    for path in paths:
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        except OSError as error:
            raise NoCredentialsError(
                f"cannot read kubeconfig {path}: {_one_line(error)}"
            ) from error
        found = True
        document = _parse_kubeconfig(path, text)
        merged["current-context"] = merged["current-context"] or document.get("current-context")
        for section in ("contexts", "clusters", "users"):
            for entry in document.get(section) or []:
                entry = {**entry, "_source": path}
                merged[section].append(entry)
    if not found:
        raise NoCredentialsError(f"no kubeconfig at {_joined(paths)}")
    return merged


def _parse_kubeconfig(path: Path, text: str) -> dict[str, Any]:
    try:
        import yaml  # only outside a cluster

        document = yaml.safe_load(text)
    except ImportError:  # pragma: no cover - both images carry PyYAML
        document = json.loads(text)
    except Exception as error:
        raise NoCredentialsError(f"kubeconfig {path} is not YAML: {_one_line(error)}") from error
    if not isinstance(document, dict):
        raise NoCredentialsError(f"kubeconfig {path} is not a mapping")
    return document


def _named(
    config: Mapping[str, Any],
    section: str,
    key: str,
    name: str | None,
    paths: Sequence[Path],
    *,
    optional: bool = False,
) -> dict[str, Any]:
    """The first entry of ``section`` called ``name`` (kubectl's merge rule), with
    relative file paths made relative to the file that defined it."""
    for entry in config[section]:
        if entry.get("name") == name and name is not None:
            value = dict(entry.get(key) or {})
            base = Path(entry["_source"]).parent
            for field_name in _FILE_FIELDS:
                if value.get(field_name):
                    value[field_name] = str(base / Path(value[field_name]).expanduser())
            return value
    if optional:
        return {}
    raise NoCredentialsError(f"kubeconfig {_joined(paths)} has no {key} named {name!r}")


def _kubeconfig_ssl_context(cluster: Mapping[str, Any], user: Mapping[str, Any]) -> ssl.SSLContext:
    if cluster.get("tls-server-name"):
        # http.client verifies the certificate against the URL's host and takes no
        # other name: refused rather than silently checked against the wrong one.
        raise NoCredentialsError("tls-server-name in a kubeconfig is not supported")
    if cluster.get("insecure-skip-tls-verify"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode("ascii")
        context = ssl.create_default_context(cadata=ca)
    elif cluster.get("certificate-authority"):
        context = ssl.create_default_context(cafile=cluster["certificate-authority"])
    else:
        context = ssl.create_default_context()
    certificate = _pem(user, "client-certificate")
    key = _pem(user, "client-key")
    if certificate and key:
        # The ssl module loads a certificate chain from files only: a private
        # temporary folder (/tmp is the one writable path of the images), gone at once.
        with tempfile.TemporaryDirectory() as folder:
            cert_file, key_file = Path(folder) / "client.crt", Path(folder) / "client.key"
            cert_file.write_bytes(certificate)
            key_file.write_bytes(key)
            context.load_cert_chain(cert_file, key_file)
    return context


def _pem(user: Mapping[str, Any], field_name: str) -> bytes | None:
    if user.get(f"{field_name}-data"):
        return base64.b64decode(user[f"{field_name}-data"])
    if user.get(field_name):
        return Path(user[field_name]).read_bytes()
    return None


def _exec_credential(plugin: Mapping[str, Any], server: str) -> dict[str, Any]:
    """Runs a kubeconfig's ``exec`` credential plugin (``aws eks get-token``,
    ``gke-gcloud-auth-plugin``, ``kubelogin``...) and returns its token or client
    certificate as user fields."""
    command = [plugin.get("command") or "", *(plugin.get("args") or [])]
    env = {**os.environ, **{e["name"]: e["value"] for e in plugin.get("env") or []}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {
            "apiVersion": plugin.get("apiVersion"),
            "kind": "ExecCredential",
            "spec": {"interactive": False, "cluster": {"server": server}},
        }
    )
    try:
        # The kubeconfig's own plugin, run as kubectl runs it.
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=True
        )
        status = json.loads(result.stdout).get("status") or {}
    except (OSError, subprocess.SubprocessError, ValueError, AttributeError) as error:
        raise NoCredentialsError(
            f"kubeconfig exec plugin {command[0]!r} failed: {_one_line(error)}"
        ) from error
    fields: dict[str, Any] = {}
    if status.get("token"):
        fields["token"] = status["token"]
    if status.get("clientCertificateData") and status.get("clientKeyData"):
        fields["client-certificate-data"] = base64.b64encode(
            status["clientCertificateData"].encode()
        ).decode()
        fields["client-key-data"] = base64.b64encode(status["clientKeyData"].encode()).decode()
    if not fields:
        raise NoCredentialsError(f"kubeconfig exec plugin {command[0]!r} returned no credential")
    return fields


def _status_message(payload: bytes, reason: str) -> str:
    """The Status message of an error answer ("jobs.batch is forbidden: ..."), one
    line; the HTTP reason when the body is not a Status."""
    try:
        message = json.loads(payload).get("message")
    except (ValueError, AttributeError):
        message = None
    return _one_line(message or reason or "no message")


def _joined(paths: Sequence[Path]) -> str:
    return os.pathsep.join(str(p) for p in paths)


def create_job_from_cronjob(
    namespace: str,
    cronjob_name: str,
    *,
    reason: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    dedupe_key: str | None = None,
    api_client: KubeClient | None = None,
) -> str:
    """Creates a Job from the CronJob's jobTemplate and returns its name.

    Raises :class:`RetrainAlreadyActiveError` when a Job of this CronJob is still running,
    :class:`RetrainAlreadyTriggeredError` when the Job of this ``dedupe_key`` exists (another
    caller won the race), and :class:`RetrainError` for anything else the API server
    refuses. The name is derived from ``dedupe_key`` (the drift job passes its window,
    so concurrent runs on the same window collide); without one, from the labels and
    the current UTC minute, so repeated requests within a minute start one Job.
    """
    if dedupe_key is None:
        minute = datetime.now(UTC).strftime("%Y%m%dT%H%M")
        dedupe_key = f"{minute}:{json.dumps(labels, sort_keys=True)}"
    name = job_name(cronjob_name, dedupe_key)
    api = api_client or cluster_api_client()
    jobs_path = f"/apis/batch/v1/namespaces/{quote(namespace)}/jobs"
    cronjob = api.request(
        "GET",
        f"/apis/batch/v1/namespaces/{quote(namespace)}/cronjobs/{quote(cronjob_name)}",
        what=f"read CronJob {namespace}/{cronjob_name}",
    )
    # Every Job of the namespace, matched by owner: labels can change with an upgrade
    # of the chart (a version label), ownership cannot.
    listed = api.request("GET", jobs_path, what=f"list Jobs in {namespace}")
    for job in listed.get("items") or []:
        if owned_by(job, cronjob) and is_active(job):
            active = job["metadata"]["name"]
            raise RetrainAlreadyActiveError(
                f"Job {namespace}/{active} of CronJob {cronjob_name} is still active",
                job_name=active,
            )
    manifest = job_from_cronjob(
        cronjob,
        name,
        labels=labels,
        annotations={**annotations, REASON_ANNOTATION: _one_line(reason)},
    )
    manifest["metadata"]["namespace"] = namespace
    try:
        api.request("POST", jobs_path, what=f"create Job {namespace}/{name}", body=manifest)
    except ApiError as error:
        if error.status == HTTPStatus.CONFLICT:
            raise RetrainAlreadyTriggeredError(
                f"Job {namespace}/{name} already exists: this retrain was already started",
                job_name=name,
            ) from error
        raise
    log.info(
        "retrain Job created",
        extra={"job": name, "namespace": namespace, "cronjob": cronjob_name},
    )
    return name


def _one_line(value: object) -> str:
    return re.sub(r"\s+", " ", str(value)).strip()
