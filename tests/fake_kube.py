"""A small fake Kubernetes API server on loopback: just the batch/v1 endpoints the
retrain trigger uses, with the API server's answers (Status bodies, 404, 409
AlreadyExists), and a record of every request. The real ``kubernetes`` client talks to
it through a ``Configuration(host=...)``.

    GET  /apis/batch/v1/namespaces/{ns}/cronjobs/{name}
    GET  /apis/batch/v1/namespaces/{ns}/jobs?labelSelector=k=v,...
    POST /apis/batch/v1/namespaces/{ns}/jobs      (201, or 409 on a duplicate name)

``list_barrier`` makes that many concurrent list requests wait for each other, so a
test can force two triggers to both see "no active Job" before either creates one.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from kubernetes import client

LOOPBACK = "127.0.0.1"
_CRONJOB = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/cronjobs/([^/]+)$")
_JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs$")


def training_cronjob(namespace: str = "triage", name: str = "accident-triage-training") -> dict:
    """A CronJob like the chart's training one, with labels and annotations on its
    jobTemplate."""
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "resourceVersion": "42",
            "labels": {"app.kubernetes.io/name": "accident-triage"},
        },
        "spec": {
            "schedule": "0 3 * * 0",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "metadata": {
                    "labels": {
                        "app.kubernetes.io/name": "accident-triage",
                        "app.kubernetes.io/component": "training",
                    },
                    "annotations": {"triage/owner": "ml-platform"},
                },
                "spec": {
                    "backoffLimit": 1,
                    "ttlSecondsAfterFinished": 86400,
                    "template": {
                        "metadata": {
                            "labels": {"app.kubernetes.io/component": "training"},
                        },
                        "spec": {
                            "restartPolicy": "Never",
                            "serviceAccountName": "accident-triage-training",
                            "securityContext": {
                                "runAsNonRoot": True,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [
                                {
                                    "name": "training",
                                    "image": "accident-triage:0.1.0",
                                    "args": ["python", "-m", "training", "train"],
                                    "env": [{"name": "TRAINING_REGISTRY_URI", "value": "s3://m/"}],
                                    "resources": {
                                        "requests": {"cpu": "500m", "memory": "1Gi"},
                                        "limits": {"memory": "2Gi"},
                                    },
                                    "securityContext": {
                                        "allowPrivilegeEscalation": False,
                                        "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]},
                                    },
                                }
                            ],
                        },
                    },
                },
            },
        },
    }


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class FakeKube:
    host: str
    cronjobs: dict[tuple[str, str], dict] = field(default_factory=dict)
    jobs: dict[tuple[str, str], dict] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    list_barrier: threading.Barrier | None = None
    create_status: int | None = None
    """When set, POST answers this status (e.g. 403) instead of creating."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_cronjob(self, cronjob: dict) -> dict:
        meta = cronjob["metadata"]
        self.cronjobs[(meta["namespace"], meta["name"])] = cronjob
        return cronjob

    def add_job(self, namespace: str, job: dict) -> None:
        self.jobs[(namespace, job["metadata"]["name"])] = job

    def api_client(self) -> client.ApiClient:
        configuration = client.Configuration(host=self.host)
        return client.ApiClient(configuration)

    def posted_jobs(self) -> list[dict]:
        return [r.body for r in self.requests if r.method == "POST"]


def _status(code: int, reason: str, message: str) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _handler(kube: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self, body: Any = None) -> tuple[str, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            with kube.lock:
                kube.requests.append(Recorded(self.command, unquote(parts.path), query, body))
            return unquote(parts.path), query

        def do_GET(self) -> None:
            path, query = self._record()
            if match := _CRONJOB.match(path):
                cronjob = kube.cronjobs.get((match[1], match[2]))
                if cronjob is None:
                    self._send(
                        404,
                        _status(404, "NotFound", f'cronjobs.batch "{match[2]}" not found'),
                    )
                else:
                    self._send(200, cronjob)
                return
            if match := _JOBS.match(path):
                if kube.list_barrier is not None:
                    kube.list_barrier.wait(timeout=10)
                selector = query.get("labelSelector", [""])[0]
                with kube.lock:
                    items = [
                        copy.deepcopy(job)
                        for (namespace, _), job in kube.jobs.items()
                        if namespace == match[1]
                        and _matches(job["metadata"].get("labels", {}), selector)
                    ]
                self._send(
                    200,
                    {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {}, "items": items},
                )
                return
            self._send(404, _status(404, "NotFound", "the server could not find the resource"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            path, _ = self._record(body)
            match = _JOBS.match(path)
            if not match:
                self._send(404, _status(404, "NotFound", "the server could not find the resource"))
                return
            if kube.create_status is not None:
                self._send(
                    kube.create_status,
                    _status(
                        kube.create_status,
                        "Forbidden",
                        'jobs.batch is forbidden: User "system:serviceaccount:triage:drift" '
                        'cannot create resource "jobs" in API group "batch"',
                    ),
                )
                return
            name = body["metadata"]["name"]
            with kube.lock:
                if (match[1], name) in kube.jobs:
                    conflict = _status(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
                    self._send(409, conflict)
                    return
                created = copy.deepcopy(body)
                created["metadata"]["uid"] = str(uuid.uuid4())
                created["metadata"]["namespace"] = match[1]
                kube.jobs[(match[1], name)] = created
            self._send(201, created)

    return Handler


@contextlib.contextmanager
def fake_kube_server() -> Iterator[FakeKube]:
    server = ThreadingHTTPServer((LOOPBACK, 0), _handler(FakeKube(host="")))
    kube = FakeKube(host=f"http://{LOOPBACK}:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(kube)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield kube
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
