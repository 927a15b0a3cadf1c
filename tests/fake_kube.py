"""A small fake Kubernetes API server on loopback: just the batch/v1 endpoints the
retrain trigger uses, with the API server's answers (Status bodies, 404, 409
AlreadyExists), and a record of every request. :class:`core.k8s_jobs.KubeClient` talks
to it over plain HTTP (:meth:`FakeKube.api_client`).

    GET  /apis/batch/v1/namespaces/{ns}/cronjobs/{name}
    GET  /apis/batch/v1/namespaces/{ns}/jobs?labelSelector=k=v,...
    POST /apis/batch/v1/namespaces/{ns}/jobs      (201, or 409 on a duplicate name)

``list_barrier`` makes that many concurrent list requests wait for each other, so a
test can force two triggers to both see "no active Job" before either creates one.
``fake_kube_server(tls=make_tls(folder))`` serves HTTPS with a certificate of a test
CA, as a pod's API server does, and records the client certificate a request showed.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import ipaddress
import json
import re
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.k8s_jobs import KubeClient
from tests.support import LOOPBACK, serving

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
    headers: dict[str, str] = field(default_factory=dict)
    client_certificate: str | None = None
    """The common name of the client certificate shown over TLS, if any."""


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

    def api_client(self) -> KubeClient:
        return KubeClient(self.host)

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
            recorded = Recorded(
                self.command,
                unquote(parts.path),
                query,
                body,
                headers=dict(self.headers.items()),
                client_certificate=_peer_common_name(self.connection),
            )
            with kube.lock:
                kube.requests.append(recorded)
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
                selector = query.get("labelSelector", [""])[0]
                with kube.lock:
                    items = [
                        copy.deepcopy(job)
                        for (namespace, _), job in kube.jobs.items()
                        if namespace == match[1]
                        and _matches(job["metadata"].get("labels", {}), selector)
                    ]
                if kube.list_barrier is not None:
                    # After the listing: each answer is what the list found before any
                    # caller could create (a caller creates only once answered), however
                    # late this thread runs once released.
                    kube.list_barrier.wait(timeout=60)
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


def _peer_common_name(connection: Any) -> str | None:
    if not isinstance(connection, ssl.SSLSocket):
        return None
    certificate = connection.getpeercert()
    for rdn in (certificate or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


@dataclass(frozen=True)
class TlsFiles:
    """A test CA, a server certificate for 127.0.0.1 signed by it, and a client
    certificate (common name ``client_name``) signed by it; PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_name: str = "retrain-tester"


def make_tls(folder: Path) -> TlsFiles:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-kube-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(name: str, usage: x509.ObjectIdentifier, san: bool) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                critical=False,
            )
        certificate = builder.sign(ca_key, hashes.SHA256())
        return certificate.public_bytes(serialization.Encoding.PEM), key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    files = TlsFiles(
        ca=folder / "ca.crt",
        server_cert=folder / "server.crt",
        server_key=folder / "server.key",
        client_cert=folder / "client.crt",
        client_key=folder / "client.key",
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert, key = leaf("fake-kube", ExtendedKeyUsageOID.SERVER_AUTH, san=True)
    files.server_cert.write_bytes(cert)
    files.server_key.write_bytes(key)
    cert, key = leaf(files.client_name, ExtendedKeyUsageOID.CLIENT_AUTH, san=False)
    files.client_cert.write_bytes(cert)
    files.client_key.write_bytes(key)
    return files


@contextlib.contextmanager
def fake_kube_server(tls: TlsFiles | None = None) -> Iterator[FakeKube]:
    server = ThreadingHTTPServer((LOOPBACK, 0), _handler(FakeKube(host="")))
    scheme = "http"
    if tls is not None:
        # Client certificates optional, as on an API server that also takes tokens.
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca))
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_cert_chain(tls.server_cert, tls.server_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    kube = FakeKube(host=f"{scheme}://{LOOPBACK}:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(kube)
    with serving(server):
        yield kube
