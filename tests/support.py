"""Helpers for tests that start real servers on loopback ports (moto S3, uvicorn,
Prometheus, ...; SeaweedFS has its own module, ``tests/seaweedfs_server.py``). A plain
module, not a conftest: import it as ``tests.support``."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

LOOPBACK = "127.0.0.1"


T = TypeVar("T")


def free_port() -> int:
    """A TCP port nothing listens on right now. The kernel may hand it out again before
    the server binds it; on a test machine that race is rare enough to accept."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class ServerStartError(RuntimeError):
    pass


def wait_for_http(
    url: str,
    *,
    timeout: float = 20.0,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Return once ``url`` answers with any HTTP status; fail after ``timeout`` seconds,
    or as soon as ``process`` dies (with the end of its ``log`` in the message)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerStartError(
                f"{url}: server exited with code {process.returncode}{log_tail(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except urllib.error.HTTPError:
            # Any status code means the server is up and routing requests.
            return
        except OSError as error:
            last_error = error
        time.sleep(0.1)
    raise ServerStartError(f"{url}: no answer within {timeout:.0f} s ({last_error}){log_tail(log)}")


def log_tail(log: Path | None, *, lines: int = 20, title: str = "server output") -> str:
    """The last lines of a server's log, for the message of a failed start."""
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- {title} ---\n" + "\n".join(text)


def stop_process(process: subprocess.Popen[bytes], *, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if the process has not exited after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)


@contextlib.contextmanager
def running_process(
    command: Sequence[str],
    *,
    ready_url: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command``, wait until ``ready_url`` answers, yield the process, and stop
    it on exit. Output goes to a temp file (a pipe nobody reads would eventually block
    the server) and is shown if the server fails to start."""
    with tempfile.TemporaryDirectory(prefix="test-server-") as folder:
        log = Path(folder) / "output.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                list(command),
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )
            try:
                wait_for_http(ready_url, timeout=timeout, process=process, log=log)
                yield process
            finally:
                stop_process(process)


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
        """The set-up client, built once: creating a client costs about 0.1 s."""
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
