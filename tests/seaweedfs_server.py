"""A real SeaweedFS (``weed mini``, the chart's bundled S3 store) on loopback ports,
configured by the Helm chart itself: the identities file (``s3.json``), the role
credentials, the bucket and the ``weed mini`` flags are taken from ``helm template``,
so the permissions the tests exercise are exactly the ones the chart deploys.

Only what cannot apply on a test machine is replaced: the data folder (a temp folder),
the addresses (``-ip=127.0.0.1 -ip.bind=127.0.0.1``) and every port ``weed mini``
opens, each pinned to a free loopback port (master, volume, filer and S3 with their
gRPC ports, and the admin server with its worker gRPC port; the legacy admin port,
WebDAV, Iceberg, Lance, metrics and debug servers stay off). Nothing leaves the
machine: ``-master.telemetry=false`` (the chart sets it too) and no other outbound
connection exists (checked with strace while writing this module: every connect()
went to 127.0.0.1 or to a Unix socket).

A plain module, not a conftest: import it as ``tests.seaweedfs_server``; the fixtures
are in ``tests/conftest.py``. See docs/seaweedfs.md.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import random
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import LOOPBACK, S3Server, ServerStartError, log_tail, stop_process

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "accident-triage"
RELEASE = "t"
NAMESPACE = "ns"
FULLNAME = f"{RELEASE}-accident-triage"
ROLES = ("training", "scorer", "drift", "admin")
WEED = "weed"
HELM = "helm"

# The chart's flags that name places of the pod; the test server sets its own.
_REPLACED_FLAGS = ("-dir", "-ip", "-ip.bind", "-s3.port", "-s3.config")
# Every listener `weed mini` opens, pinned (a port left to mini would be a fixed
# default such as 8333 or 9333, or derived as port + 10000, and collide with
# anything else on the machine).
_PORT_FLAGS = (
    "-master.port",
    "-master.port.grpc",
    "-volume.port",
    "-volume.port.grpc",
    "-filer.port",
    "-filer.port.grpc",
    "-s3.port",
    "-s3.port.grpc",
    "-admin.port",
    "-admin.port.grpc",
)
# gRPC services also listen on these Unix sockets, named by port and always in /tmp
# (mini.go's RegisterLocalGrpcSocket); a clean stop removes them, a killed server not.
_GRPC_SOCKETS = {
    "-master.port.grpc": "/tmp/seaweedfs-master-grpc-{port}.sock",
    "-volume.port.grpc": "/tmp/seaweedfs-volume-grpc-{port}.sock",
    "-filer.port.grpc": "/tmp/seaweedfs-filer-grpc-{port}.sock",
    "-s3.port.grpc": "/tmp/seaweedfs-s3-grpc-{port}.sock",
    "-admin.port.grpc": "/tmp/seaweedfs-admin-grpc-{port}.sock",
}

# Start-up times of every server of the session, printed in pytest's summary.
STARTUP_SECONDS: list[float] = []


def require_tool(name: str, purpose: str) -> str:
    """The tool's path; missing: a failure under CI=true, else a skip that says why."""
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed ({purpose})"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason + "; CI must run the SeaweedFS tests", pytrace=False)
    pytest.skip(reason)


def require_seaweedfs() -> None:
    require_tool(WEED, "build it with .ci/build-go-tools.sh seaweedfs")
    require_tool(HELM, "the SeaweedFS tests take the identities from helm template")


# --- what the chart renders -------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class ChartStorage:
    """The S3 side of one ``helm template`` of the chart."""

    values: Mapping[str, str]
    s3_json: bytes
    credentials: Mapping[str, Credentials]
    weed_args: tuple[str, ...]
    registry_uri: str
    """The storage root every component is given (``s3://<bucket>/<prefix>``)."""
    workload_secrets: Mapping[str, frozenset[str]]
    """Per workload (``Kind/name``), the Secrets its containers take AWS_* from."""

    @property
    def bucket(self) -> str:
        return self.registry_uri.removeprefix("s3://").split("/", 1)[0]

    @property
    def identities(self) -> dict[str, list[str]]:
        data = json.loads(self.s3_json)
        return {identity["name"]: identity["actions"] for identity in data["identities"]}

    def role_secret(self, role: str) -> str:
        return f"{FULLNAME}-s3-{role}"


def _decode(value: str) -> str:
    return base64.b64decode(value).decode("utf-8")


@functools.cache
def _render(values: tuple[tuple[str, str], ...]) -> ChartStorage:
    command = [HELM, "template", RELEASE, str(CHART), "-n", NAMESPACE]
    for key, value in values:
        command += ["--set", f"{key}={value}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise ServerStartError(f"helm template failed: {result.stderr.strip()}")
    documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    s3_json: bytes | None = None
    credentials: dict[str, Credentials] = {}
    weed_args: list[str] | None = None
    registry_uri: str | None = None
    workload_secrets: dict[str, frozenset[str]] = {}
    for doc in documents:
        kind, name = doc["kind"], doc["metadata"]["name"]
        data = doc.get("data") or {}
        if kind == "Secret" and name == f"{FULLNAME}-seaweedfs-s3-config":
            s3_json = base64.b64decode(data["s3.json"])
        elif kind == "Secret" and name.startswith(f"{FULLNAME}-s3-"):
            credentials[name.removeprefix(f"{FULLNAME}-s3-")] = Credentials(
                _decode(data["AWS_ACCESS_KEY_ID"]), _decode(data["AWS_SECRET_ACCESS_KEY"])
            )
        spec = _pod_spec(doc)
        if spec is None:
            continue
        containers = spec.get("initContainers", []) + spec.get("containers", [])
        secrets = set()
        for container in containers:
            if container.get("command", [None])[0] == WEED:
                weed_args = list(container.get("args", []))
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef", {})
                if variable["name"].startswith("AWS_") and ref:
                    secrets.add(ref["name"])
                if variable["name"].endswith("_REGISTRY_URI") and "value" in variable:
                    registry_uri = registry_uri or variable["value"]
        workload_secrets[f"{kind}/{name}"] = frozenset(secrets)
    missing = [
        what
        for what, value in (
            ("the seaweedfs-s3-config Secret", s3_json),
            ("the weed container", weed_args),
            ("a *_REGISTRY_URI variable", registry_uri),
        )
        if value is None
    ] + [f"the s3-{role} Secret" for role in ROLES if role not in credentials]
    if missing:
        raise ServerStartError(f"{' '.join(command)}: no {', '.join(missing)}")
    assert s3_json is not None and weed_args is not None and registry_uri is not None
    return ChartStorage(
        values=dict(values),
        s3_json=s3_json,
        credentials=credentials,
        weed_args=tuple(weed_args),
        registry_uri=registry_uri,
        workload_secrets=workload_secrets,
    )


def _pod_spec(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec") or {}
    if doc["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
        pod: dict[str, Any] = spec.get("template", {}).get("spec", {})
        return pod
    if doc["kind"] == "Pod":
        return dict(spec)
    return None


def render_chart_storage(values: Mapping[str, str] | None = None) -> ChartStorage:
    """``helm template`` with ``--set`` ``values``, once per distinct set of values
    (the chart generates random credentials on every render)."""
    return _render(tuple(sorted((values or {}).items())))


# --- the server -------------------------------------------------------------------


def _ephemeral_floor() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return 32768


def free_low_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1, below the kernel's ephemeral range:
    mini binds its services one after the other over seconds, and a port of the
    ephemeral range could meanwhile become the source port of one of its own outgoing
    connections (mini.go warns about exactly that for the admin gRPC port)."""
    floor = _ephemeral_floor()
    chosen: list[int] = []
    rng = random.SystemRandom()
    while len(chosen) < count:
        port = rng.randrange(20000, floor)
        if port in chosen:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
        chosen.append(port)
    return chosen


def _s3_client(endpoint: str, credentials: Credentials, *, attempts: int = 3) -> Any:
    import boto3.session
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        region_name="us-east-1",
    )
    return session.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": attempts, "mode": "standard"},
            connect_timeout=2,
            read_timeout=10,
        ),
    )


@dataclass(kw_only=True)
class SeaweedFS(S3Server):
    """A running ``weed mini``. ``admin``/``make_bucket`` use the chart's admin identity
    (the only one that may create buckets); ``role_env`` gives a role's AWS_* variables."""

    chart: ChartStorage
    folder: Path
    ports: dict[str, int]
    command: list[str]
    startup_seconds: float
    log: Path
    name: str = "seaweedfs"

    @property
    def bucket(self) -> str:
        return self.chart.bucket

    @property
    def registry_uri(self) -> str:
        return self.chart.registry_uri

    def credentials(self, role: str) -> Credentials:
        return self.chart.credentials[role]

    def role_client(self, role: str) -> Any:
        """A raw boto3 client with a role's credentials, one attempt per call."""
        return _s3_client(self.endpoint_url, self.credentials(role), attempts=1)

    def role_env(self, role: str) -> dict[str, str]:
        """The AWS_* variables a pod of this role gets from the chart, pointed here."""
        credentials = self.credentials(role)
        return {
            **aws_isolation_env(),
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        }

    def listening(self) -> list[str]:
        """``address:port`` of every TCP listener of the weed process (``ss -ltnp``)."""
        result = subprocess.run(
            ["ss", "-Hltnp"], capture_output=True, text=True, timeout=30, check=True
        )
        marker = f"pid={self.process.pid},"
        return sorted(line.split()[3] for line in result.stdout.splitlines() if marker in line)


def aws_isolation_env() -> dict[str, str]:
    """AWS settings that keep the SDK away from a developer's configuration and from
    instance metadata; the credentials and endpoint are set by the caller."""
    return {
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def environment_without_aws(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment without any AWS_* variable, plus ``extra``: for subprocesses."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(extra or {})
    return env


def weed_command(
    chart: ChartStorage, folder: Path, ports: Mapping[str, int], *, create_bucket: bool
) -> list[str]:
    """The chart's ``weed mini`` command with the pod's places replaced by ours."""
    kept = [
        arg
        for arg in chart.weed_args
        if arg.split("=", 1)[0] not in _REPLACED_FLAGS + _PORT_FLAGS
        and (create_bucket or not arg.startswith("-bucket="))
    ]
    if not kept or kept[0] != "mini":
        raise ServerStartError(f"the chart's weed container does not run `weed mini`: {kept}")
    return [
        WEED,
        *kept,
        f"-dir={folder / 'data'}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-s3.config={folder / 's3.json'}",
        *(f"{flag}={port}" for flag, port in ports.items()),
        # The admin server also serves its HTTP and worker gRPC on fixed legacy ports
        # (23646, 33646) unless told not to.
        "-admin.port.legacy=0",
        # Its own Unix sockets default to /tmp/seaweedfs-{filer,s3}-<port>.sock.
        f"-filer.localSocket={folder / 'filer.sock'}",
        f"-s3.localSocket={folder / 's3.sock'}",
    ]


def _wait_ready(server: SeaweedFS, *, timeout: float, create_bucket: bool) -> None:
    """Ready when the S3 port answers and, if the chart's bucket is created at start-up,
    when that bucket exists (mini creates it after every component is up)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = _s3_client(server.endpoint_url, server.credentials("admin"), attempts=1)

    def output() -> str:
        return log_tail(server.log, lines=30, title="weed output")

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerStartError(
                f"weed mini exited with code {server.process.returncode}{output()}"
            )
        try:
            if create_bucket:
                client.head_bucket(Bucket=server.bucket)
            else:
                client.list_buckets()
            return
        except (ClientError, BotoCoreError) as error:
            last = error
        time.sleep(0.1)
    raise ServerStartError(
        f"SeaweedFS not ready at {server.endpoint_url} within {timeout:.0f} s "
        f"(last answer: {last}){output()}"
    )


def _remove_stale_sockets(ports: Mapping[str, int]) -> None:
    for flag, pattern in _GRPC_SOCKETS.items():
        path = Path(pattern.format(port=ports[flag]))
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()


@contextlib.contextmanager
def seaweedfs_server(
    values: Mapping[str, str] | None = None,
    *,
    create_bucket: bool = True,
    timeout: float = 60.0,
) -> Iterator[SeaweedFS]:
    """A fresh ``weed mini`` configured by ``helm template --set values``; stopped
    (SIGTERM, SIGKILL after 10 s) and its folder removed on exit. ``create_bucket=False``
    leaves out the chart's ``-bucket``, for tests of a store whose bucket is not there
    yet."""
    chart = render_chart_storage(values)
    folder = Path(tempfile.mkdtemp(prefix="seaweedfs-test-"))
    try:
        (folder / "data").mkdir()
        config = folder / "s3.json"
        config.write_bytes(chart.s3_json)
        config.chmod(0o600)
        ports = dict(zip(_PORT_FLAGS, free_low_ports(len(_PORT_FLAGS)), strict=True))
        command = weed_command(chart, folder, ports, create_bucket=create_bucket)
        log = folder / "weed.log"
        # HOME in the temp folder: nothing of the server lands in the real home.
        env = environment_without_aws({"HOME": str(folder)})
        env = {key: value for key, value in env.items() if not key.startswith("WEED_")}
        with log.open("wb") as output:
            started = time.monotonic()
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=folder,
                env=env,
                start_new_session=True,
            )
            try:
                server = SeaweedFS(
                    endpoint_url=f"http://{LOOPBACK}:{ports['-s3.port']}",
                    process=process,
                    access_key=chart.credentials["admin"].access_key,
                    secret_key=chart.credentials["admin"].secret_key,
                    chart=chart,
                    folder=folder,
                    ports=ports,
                    command=command,
                    startup_seconds=0.0,
                    log=log,
                )
                _wait_ready(server, timeout=timeout, create_bucket=create_bucket)
                server.startup_seconds = time.monotonic() - started
                STARTUP_SECONDS.append(server.startup_seconds)
                yield server
            finally:
                # mini drains S3 and admin, then filer, volume and master: about 3 s.
                stop_process(process, grace=10.0)
                _remove_stale_sockets(ports)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def empty_and_delete_bucket(client: Any, bucket: str) -> None:
    """Every object, then the bucket (``weed mini`` refuses to delete a non-empty one)."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)
