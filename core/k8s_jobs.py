"""Starting a training run in the cluster: a Job made from the training CronJob.

:func:`job_from_cronjob` builds the Job the way ``kubectl create job --from=cronjob/X``
does (kubectl's ``createJobFromCronJob``), as plain data so it can be validated
against the Kubernetes schema without a cluster. :func:`create_job_from_cronjob` reads
the CronJob, refuses when one of its Jobs is still active, and creates the Job under a
deterministic name, so two concurrent callers create one Job: the second gets HTTP 409
AlreadyExists from the API server, which is the lock.

Both the drift job and the scorer's ``POST /retrain`` call :func:`create_job_from_cronjob`.
The ``kubernetes`` package is imported inside functions: the scorer only pays for it
when a retrain is requested.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import RetrainAlreadyActiveError, RetrainAlreadyTriggeredError, RetrainError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"
# The scorer's POST /retrain labels its Jobs with the same prefix.
LABEL_PREFIX = "triage/"
TRIGGER_LABEL = LABEL_PREFIX + "trigger"
REASON_ANNOTATION = LABEL_PREFIX + "retrain-reason"

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

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


def cluster_api_client() -> ApiClient:
    """An API client from the pod's service account, or from the kubeconfig outside a
    cluster. A Configuration of our own: the kubernetes package's global default is
    left alone."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        try:
            config.load_kube_config(client_configuration=configuration, persist_config=False)
        except (config.ConfigException, OSError) as error:
            raise RetrainError(
                f"no Kubernetes credentials: not in a pod with a service account and no "
                f"usable kubeconfig ({_one_line(error)})"
            ) from error
    return client.ApiClient(configuration)


def create_job_from_cronjob(
    namespace: str,
    cronjob_name: str,
    *,
    reason: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    dedupe_key: str | None = None,
    api_client: ApiClient | None = None,
) -> str:
    """Creates a Job from the CronJob's jobTemplate and returns its name.

    Raises :class:`RetrainAlreadyActiveError` when a Job of this CronJob is still running,
    :class:`RetrainAlreadyTriggeredError` when the Job of this ``dedupe_key`` exists (another
    caller won the race), and :class:`RetrainError` for anything else the API server
    refuses. The name is derived from ``dedupe_key`` (the drift job passes its window,
    so concurrent runs on the same window collide); without one, from the labels and
    the current UTC minute, so repeated requests within a minute start one Job.
    """
    from kubernetes import client

    if dedupe_key is None:
        minute = datetime.now(UTC).strftime("%Y%m%dT%H%M")
        dedupe_key = f"{minute}:{json.dumps(labels, sort_keys=True)}"
    key = dedupe_key
    name = job_name(cronjob_name, key)
    owns_client = api_client is None
    api_client = api_client or cluster_api_client()
    try:
        batch = client.BatchV1Api(api_client)
        cronjob = _call(
            f"read CronJob {namespace}/{cronjob_name}",
            lambda: batch.read_namespaced_cron_job(cronjob_name, namespace, _preload_content=False),
        )
        # Every Job of the namespace, matched by owner: labels can change with an upgrade
        # of the chart (a version label), ownership cannot.
        listed = _call(
            f"list Jobs in {namespace}",
            lambda: batch.list_namespaced_job(namespace, _preload_content=False),
        )
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
            # A plain dict is sent as is: the client's V1Job model would drop any field
            # of the template it does not know (a newer API server's).
            batch.create_namespaced_job(namespace, manifest, _preload_content=False)  # type: ignore[arg-type]
        except client.ApiException as error:
            if error.status == 409:
                raise RetrainAlreadyTriggeredError(
                    f"Job {namespace}/{name} already exists: this retrain was already started",
                    job_name=name,
                ) from error
            raise RetrainError(f"create Job {namespace}/{name}: {_api_reason(error)}") from error
        log.info(
            "retrain Job created",
            extra={"job": name, "namespace": namespace, "cronjob": cronjob_name},
        )
        return name
    finally:
        if owns_client:
            api_client.close()


def _call(what: str, request: Any) -> dict[str, Any]:
    """Runs one API request whose content was not preloaded, and parses its JSON."""
    from kubernetes import client
    from urllib3.exceptions import HTTPError

    try:
        response = request()
    except client.ApiException as error:
        raise RetrainError(f"{what}: {_api_reason(error)}") from error
    except HTTPError as error:
        raise RetrainError(f"{what}: API server unreachable ({_one_line(error)})") from error
    try:
        data: dict[str, Any] = json.loads(response.data)
    except (ValueError, TypeError) as error:
        raise RetrainError(f"{what}: the API server's answer is not JSON") from error
    return data


def _api_reason(error: Any) -> str:
    """The Status message of an API error ("jobs.batch is forbidden: ..."), one line."""
    try:
        message = json.loads(error.body).get("message")
    except (ValueError, TypeError, AttributeError):
        message = None
    return f"HTTP {error.status}: {_one_line(message or error.reason)}"


def _one_line(value: object) -> str:
    return re.sub(r"\s+", " ", str(value)).strip()
