"""The process and port helpers the tests, the demo and the benchmarks share: a server
is handed over only once it answers as asked, a failed start says why (with the end of
the server's output, or where it is), and nothing outlives its ``with`` block."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools.processes import (
    LOOPBACK,
    ServerStartError,
    free_port,
    http_get,
    running_process,
    stop_process,
)

pytestmark = pytest.mark.servers

# Answers 503 to its first `not_ready` requests, then 200: a scorer before and after
# its model is loaded.
SERVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    port, not_ready = int(sys.argv[1]), int(sys.argv[2])
    seen = 0

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            global seen
            seen += 1
            status = 503 if seen <= not_ready else 200
            body = str(seen).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    print("listening", flush=True)
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


def _server(port: int, not_ready: int) -> list[str]:
    return [sys.executable, "-c", SERVER, str(port), str(not_ready)]


def test_free_port_can_be_bound_on_loopback() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, port))


def test_waits_for_a_wanted_status_then_stops_the_server(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://{LOOPBACK}:{port}/ready"
    log = tmp_path / "server.log"
    with running_process(_server(port, 3), ready_url=url, statuses={200}, log=log) as process:
        # Three 503 answers were waited through; the next request is the fifth.
        assert http_get(url) == (200, b"5")
    assert process.returncode is not None
    assert log.read_text() == "listening\n"


def test_any_status_will_do_when_none_is_asked_for() -> None:
    port = free_port()
    url = f"http://{LOOPBACK}:{port}/"
    with running_process(_server(port, 100), ready_url=url):
        assert http_get(url) == (503, b"2")


def test_a_server_that_dies_fails_the_start_with_its_output(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "print('bad configuration: no model'); raise SystemExit(4)"]
    url = f"http://{LOOPBACK}:{free_port()}/"
    with (
        pytest.raises(ServerStartError) as caught,
        running_process(command, ready_url=url, timeout=60, name="scorer"),
    ):
        pytest.fail("a dead server was handed over")
    message = str(caught.value)
    assert message.startswith(f"scorer at {url} exited with code 4 before it was ready")
    assert message.rstrip().endswith("bad configuration: no model")

    log = tmp_path / "scorer.log"
    with (
        pytest.raises(ServerStartError) as caught,
        running_process(command, ready_url=url, timeout=60, log=log, log_lines=0),
    ):
        pytest.fail("a dead server was handed over")
    assert "\n" not in str(caught.value) and str(caught.value).endswith(f"; see {log}")


def test_a_server_that_never_answers_as_asked_fails_after_the_timeout() -> None:
    port = free_port()
    url = f"http://{LOOPBACK}:{port}/"
    with (
        # However slowly it starts, it is refused: no answer, or 503s, within the time.
        pytest.raises(ServerStartError, match=r"not ready within 1 s \(last answer: "),
        running_process(_server(port, 10**9), ready_url=url, statuses={200}, timeout=1),
    ):
        pytest.fail("a server that says 503 was handed over")


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    ignoring = "import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    ignoring += "print('ready', flush=True)\ntime.sleep(600)\n"
    process = subprocess.Popen([sys.executable, "-c", ignoring], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        stop_process(process, grace=0.5)
        assert process.returncode == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
