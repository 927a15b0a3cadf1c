"""The scorer serves without the packages its image leaves out.

``requirements/scorer-forbidden.txt`` names what the scorer image must not carry
(pandas, the kubernetes client, the training and drift stack). The image build and
the Docker smoke test check the image; this runs the real ``python -m service`` with
those packages made unimportable, as they are in the image, and goes through every
path that writes or scores: ``/predict``, ``/predict/batch``, ``/feedback`` and the
inference-log flush on SIGTERM. A run-time import of one of them fails here, without
Docker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from core import contract, layout
from tests.support import LOOPBACK, free_port, wait_for_http
from tests.test_lock import scorer_forbidden

# Runs `python -m service` with a finder in front of every other that refuses the
# forbidden top-level packages: an import of one raises ImportError, as in the image
# (pyarrow's optional pandas import then finds no pandas, as there).
_WITHOUT = """
import runpy, sys

FORBIDDEN = frozenset(sys.argv[1].split(","))


class Forbidden:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in FORBIDDEN:
            raise ImportError(f"{name} is not in the scorer image", name=name)
        return None


sys.meta_path.insert(0, Forbidden())
sys.argv = ["service", *sys.argv[2:]]
runpy.run_module("service", run_name="__main__", alter_sys=True)
"""


@pytest.mark.servers
def test_the_scorer_scores_logs_and_stores_labels_without_them(
    registry_root: Path, tmp_path: Path
) -> None:
    modules = sorted(scorer_forbidden().values())
    assert {"pandas", "kubernetes", "sklearn"} <= set(modules)
    port = free_port()
    env = {
        **os.environ,
        "SCORER_REGISTRY_URI": str(registry_root),
        "SCORER_INFERENCE_LOG_FLUSH_SECONDS": "3600",
        "SCORER_POLL_INTERVAL_SECONDS": "0",
        "SCORER_GRACEFUL_SHUTDOWN_SECONDS": "5",
    }
    command = [sys.executable, "-c", _WITHOUT, ",".join(modules)]
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, "--host", LOOPBACK, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
        try:
            base = f"http://{LOOPBACK}:{port}"
            wait_for_http(base + "/ready", timeout=60, process=process, log=stderr_path)
            row = contract.example_row()
            one = httpx.post(base + "/predict", json=row, timeout=30)
            assert one.status_code == 200, one.text
            batch = httpx.post(base + "/predict/batch", json={"rows": [row, row]}, timeout=30)
            assert batch.status_code == 200, batch.text
            label = {"request_id": one.json()["request_id"], "label": 1}
            stored = httpx.post(base + "/feedback", json=label, timeout=30)
            assert stored.status_code == 200, stored.text
            process.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal once shut down, so the exit status says SIGTERM.
            assert process.wait(timeout=30) in (0, -signal.SIGTERM), stderr_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert "is not in the scorer image" not in stderr_path.read_text()

    def rows(prefix: str) -> int:
        files = (registry_root / prefix).rglob("*.parquet")
        return sum(pq.read_table(f).num_rows for f in files)

    assert rows(layout.INFERENCE_LOG_PREFIX) == 3
    assert rows(layout.FEEDBACK_PREFIX) == 1
