"""``python -m service``: settings from the environment, JSON logs with request ids,
and a clean SIGTERM (stop accepting, flush the inference log, exit in time)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from core import contract, layout
from service.__main__ import main
from tests.support import LOOPBACK, free_port, wait_for_http


def test_invalid_settings_exit_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCORER_BATCH_LIMIT", "0")
    assert main(["--port", "1"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: invalid settings: SCORER_BATCH_LIMIT")
    assert error.count("\n") == 1


def test_a_malformed_storage_uri_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCORER_REGISTRY_URI", "ftp://nowhere/x")
    assert main(["--port", "1"]) == 2
    assert "unsupported storage URI" in capsys.readouterr().err


def test_the_heap_is_frozen_and_young_collections_are_spaced_out() -> None:
    # In a child: freezing and thresholds are the whole process's.
    probe = (
        "import gc; from service.__main__ import settle_heap, YOUNG_GENERATION_THRESHOLD as T;"
        "before = gc.get_freeze_count(); settle_heap();"
        "print(before, gc.get_freeze_count() > 1000, gc.get_threshold()[0] == T)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["0", "True", "True"]


@pytest.mark.servers
def test_sigterm_flushes_the_inference_log_and_exits(registry_root: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SCORER_REGISTRY_URI": str(registry_root),
        "SCORER_INFERENCE_LOG_FLUSH_SECONDS": "3600",
        "SCORER_POLL_INTERVAL_SECONDS": "0",
        "SCORER_ACCESS_LOG": "true",
        "SCORER_GRACEFUL_SHUTDOWN_SECONDS": "5",
    }
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "--host", LOOPBACK, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
        try:
            base = f"http://{LOOPBACK}:{port}"
            wait_for_http(base + "/health", timeout=60, process=process, log=stderr_path)
            ids = [
                httpx.post(
                    base + "/predict",
                    json=contract.example_row(),
                    headers={"X-Request-ID": f"t-{i}"},
                ).json()["request_id"]
                for i in range(5)
            ]
            assert not list((registry_root / "inference-logs").rglob("*.parquet"))
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal once shut down, so the exit status says SIGTERM.
            assert process.wait(timeout=20) in (0, -signal.SIGTERM)
            assert time.monotonic() - started < 10
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    files = list((registry_root / "inference-logs").rglob("*.parquet"))
    frame = pd.concat(pd.read_parquet(io.BytesIO(f.read_bytes())) for f in files)
    assert sorted(frame[layout.REQUEST_ID]) == sorted(ids)

    records = [
        json.loads(line) for line in stderr_path.read_text().splitlines() if line.startswith("{")
    ]
    messages = [r["message"] for r in records]
    assert "scorer started" in messages
    assert "inference log closed" in messages
    closed = next(r for r in records if r["message"] == "inference log closed")
    assert closed["rows_written"] == 5
    assert closed["rows_dropped"] == 0
    # Access-log lines carry the (client's) request id of the request they describe.
    access = [r for r in records if r.get("logger") == "uvicorn.access"]
    assert {r.get("request_id") for r in access} >= {f"t-{i}" for i in range(5)}
