"""Helpers for tests that start real servers on loopback ports (moto S3, uvicorn,
Prometheus, ...; SeaweedFS has its own module, ``tests/seaweedfs_server.py``). A plain
module, not a conftest: import it as ``tests.support``.

The process and port helpers (free_port, running_process, wait_for_http, stop_process,
log_tail) are the ones the demo and the benchmarks use, from ``tools/processes.py``;
they are imported here so tests find every helper in one place."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socketserver
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tools.processes import (
    LOOPBACK,
    ServerStartError,
    free_port,
    log_tail,
    running_process,
    stop_process,
    wait_for_http,
)

__all__ = [
    "LOOPBACK",
    "S3Server",
    "ServerStartError",
    "free_port",
    "log_tail",
    "moto_env",
    "moto_s3_server",
    "moto_server_command",
    "processes_mentioning",
    "run_together",
    "running_process",
    "stop_process",
    "wait_for_http",
]

T = TypeVar("T")


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """``server`` (a test's own small HTTP server on loopback) answering on a thread
    until the block ends; then shut down, its socket closed and the thread joined."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def moto_server_command(port: int) -> list[str]:
    """The real moto S3 server: the console script installed next to this Python,
    or the module when the script is missing (an unusual install layout)."""
    script = Path(sys.executable).parent / "moto_server"
    if script.exists():
        return [str(script), "-H", LOOPBACK, "-p", str(port)]
    found = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if found:
        return [found, "-H", LOOPBACK, "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]


@dataclass
class S3Server:
    """A running S3 server. ``access_key``/``secret_key`` are the credentials that may
    create buckets: anything for moto, the chart's admin identity for SeaweedFS."""

    endpoint_url: str
    process: subprocess.Popen[bytes]
    access_key: str = "testing"
    secret_key: str = "testing"
    name: str = "moto"

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        """A boto3 client (path-style, as the storage layer talks) for test set-up."""
        import boto3.session
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name="us-east-1",
        )
        return session.client(
            "s3", endpoint_url=self.endpoint_url, config=Config(s3={"addressing_style": "path"})
        )

    @functools.cached_property
    def admin(self) -> Any:
        """The set-up client, built once: a new client loads botocore's S3 model, which
        is slow next to the requests a test makes."""
        return self.client()

    def make_bucket(self) -> str:
        """Create a fresh, uniquely named bucket and return its name."""
        bucket = f"test-{uuid.uuid4().hex[:20]}"
        self.admin.create_bucket(Bucket=bucket)
        return bucket


def moto_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a moto server process: ours, without AWS settings that
    could make it reach out or pick up a developer's profile."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(extra or {})
    return env


@contextlib.contextmanager
def moto_s3_server(*, env: Mapping[str, str] | None = None) -> Iterator[S3Server]:
    """A fresh ``moto_server`` on a free loopback port, stopped on exit."""
    port = free_port()
    endpoint = f"http://{LOOPBACK}:{port}"
    with running_process(
        moto_server_command(port),
        ready_url=f"{endpoint}/moto-api/",
        env=moto_env(env),
    ) as process:
        yield S3Server(endpoint_url=endpoint, process=process)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text``: what a test checks is
    gone after it stopped its servers."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def run_together(
    count: int, action: Callable[[int], T], *, timeout: float = 120
) -> list[T | BaseException]:
    """Calls ``action(0)`` to ``action(count - 1)`` in threads that one barrier
    releases at once, and returns each call's result or the exception it raised, in
    index order (an assert inside a thread would not fail the test)."""
    barrier = threading.Barrier(count)
    outcomes: dict[int, T | BaseException] = {}

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            outcomes[index] = action(index)
        except BaseException as error:
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert len(outcomes) == count, f"{count - len(outcomes)} of {count} calls did not finish"
    return [outcomes[index] for index in range(count)]
