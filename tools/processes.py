"""Child processes on loopback ports, for the tests, the demo and the benchmarks: a
free port, start a process with its output in a file, wait until it answers over
HTTP, stop it (SIGTERM, then SIGKILL).

Servers listen on 127.0.0.1 only, and every process started here is stopped when its
``with`` block ends, whatever happens inside it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Container, Iterator, Mapping, Sequence
from pathlib import Path

from tools.errors import ServerStartError

LOOPBACK = "127.0.0.1"

__all__ = [
    "LOOPBACK",
    "ServerStartError",
    "free_port",
    "http_get",
    "log_tail",
    "running_process",
    "stop_process",
    "wait_for_http",
]


def free_port() -> int:
    """A TCP port nothing listens on right now. The kernel may hand it out again before
    the server binds it; on a development machine that race is rare enough to accept."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def http_get(url: str, *, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body; an HTTP error status is an answer, not an exception (a
    connection failure is: ``OSError``)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (our URL)
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def http_post(url: str, body: bytes, *, timeout: float = 10.0) -> tuple[int, bytes]:
    """A JSON POST; status and body as :func:`http_get` gives them."""
    request = urllib.request.Request(  # noqa: S310 (our URL)
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def log_tail(log: Path | None, *, lines: int = 20, title: str = "server output") -> str:
    """The end of a process's log, for the message of a failed start. With ``lines=0``
    only where the log is: a message that must stay on one line (a command's error)."""
    if log is None or not log.exists():
        return ""
    if lines == 0:
        return f"; see {log}"
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- {title} ---\n" + "\n".join(text)


def wait_for_http(
    url: str,
    *,
    timeout: float = 20.0,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    log_lines: int = 20,
    statuses: Container[int] | None = None,
    name: str = "server",
) -> None:
    """Return once ``url`` answers with one of ``statuses`` (any HTTP status when
    None: the server is up and routing requests); fail after ``timeout`` seconds, or as
    soon as ``process`` dies, with the end of its ``log`` in the message."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerStartError(
                f"{name} at {url} exited with code {process.returncode} before it was ready"
                f"{log_tail(log, lines=log_lines)}"
            )
        try:
            status, _ = http_get(url, timeout=1.0)
        except OSError as error:
            last = error
        else:
            if statuses is None or status in statuses:
                return
            last = f"HTTP {status}"
        time.sleep(0.1)
    raise ServerStartError(
        f"{name} at {url} not ready within {timeout:.0f} s (last answer: {last})"
        f"{log_tail(log, lines=log_lines)}"
    )


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
    log: Path | None = None,
    log_lines: int = 20,
    statuses: Container[int] | None = None,
    grace: float = 5.0,
    name: str = "server",
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command``, wait until ``ready_url`` answers (see :func:`wait_for_http`),
    yield the process, and stop it on exit, ``grace`` seconds after SIGTERM at most.
    Output goes to ``log``, or to a temporary file when None (a pipe nobody reads would
    eventually block the server), and its end is shown if the start fails."""
    with contextlib.ExitStack() as stack:
        if log is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="server-"))
            log = Path(folder) / "output.log"
        output = stack.enter_context(log.open("wb"))
        process = subprocess.Popen(
            list(command),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        stack.callback(stop_process, process, grace=grace)
        wait_for_http(
            ready_url,
            timeout=timeout,
            process=process,
            log=log,
            log_lines=log_lines,
            statuses=statuses,
            name=name,
        )
        yield process
