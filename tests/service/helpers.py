"""Constants and small helpers shared by the scorer tests (import as
``tests.service.helpers``; conftest fixtures use them too)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from tests.support import LOOPBACK, free_port

V1 = "v1"
V2 = "v2"
API_KEY = "test-admin-key"
AUTH = {"X-API-Key": API_KEY}


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, step: float = 0.05) -> None:
    """Polls ``predicate`` until it holds; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(step)


class SwitchableProxy:
    """A TCP forwarder on a loopback port that can be switched off to simulate a
    storage outage: when down it closes open connections and resets new ones, while
    the real server behind it (and its data) stays up. When hanging it accepts new
    connections and never answers them, as a storage that stopped responding does
    (the client waits for its own timeout)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        import socket

        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.up = True
        self.hanging = False
        self._closed = False
        self._connections: list[socket.socket] = []
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        import socket

        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if self.hanging:
                with self._lock:
                    self._held.append(client)
                continue
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()

    def set_down(self) -> None:
        self.up = False
        with self._lock:
            connections, self._connections = self._connections, []
        for sock in connections:
            # shutdown, not just close: it wakes the pipe thread blocked in recv().
            with contextlib.suppress(OSError):
                sock.shutdown(2)
            with contextlib.suppress(OSError):
                sock.close()

    def set_hanging(self) -> None:
        """Open connections are cut; new ones are accepted and left unanswered."""
        self.hanging = True
        self.set_down()

    def set_up(self) -> None:
        """Forwards again; connections held while hanging are closed (their clients
        see an error at once instead of waiting for their timeout)."""
        self.hanging = False
        self.up = True
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._closed = True
        self.set_up()
        self.set_down()
        self._thread.join(5)
        self._listener.close()


@contextlib.contextmanager
def live_server(app: FastAPI, *, timeout: float = 20.0) -> Iterator[str]:
    """``app`` under a real uvicorn server on a free loopback port, in a thread (no
    signal handlers: uvicorn installs them only in the main thread)."""
    port = free_port()
    config = uvicorn.Config(
        app, host=LOOPBACK, port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start on {LOOPBACK}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        assert not thread.is_alive(), "uvicorn did not stop"
