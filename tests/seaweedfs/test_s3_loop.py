"""The demo's loop on S3, every step a real process with its own role's credentials
from the chart, as the pods run it: the training job trains and promotes a first model
into ``s3://triage/``, the scorer serves it and logs to the bucket, drifted traffic
with feedback labels arrives, the drift job reports under ``reports/drift/``, the
training job retrains (reading the scorer's feedback) and the scorer hot-swaps to the
new version. The local demo (tools/demo.py) does the same on a folder."""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core import layout
from tests import seaweedfs_server as swfs
from tests.service.helpers import wait_for
from tests.support import LOOPBACK, free_port, processes_mentioning, running_process
from tools.demo import (
    SCORER_FLUSH_SECONDS,
    SCORER_POLL_SECONDS,
    scorer_metric,
    served_version,
    wait_for_flush,
)

pytestmark = [pytest.mark.slow, pytest.mark.servers, pytest.mark.seaweedfs]

RAW = "synthetic://?accidents=3000"
# rate x duration requests are sent whatever the scorer's speed: above the drift job's
# default min_rows (1,000), which the demo keeps too.
RATE, DURATION = 200, 7


def run_json(command: list[str], env: Mapping[str, str], *, timeout: float = 300) -> dict[str, Any]:
    """A CLI run that must succeed; its last stdout line is its JSON result."""
    result = subprocess.run(
        [sys.executable, *command],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=swfs.ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{command}: {result.stderr[-3000:]}"
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.fixture
def store() -> Iterator[swfs.SeaweedFS]:
    """A store of its own: the loop starts from an empty bucket."""
    swfs.require_seaweedfs()
    with swfs.seaweedfs_server() as server:
        yield server


@contextlib.contextmanager
def scorer(server: swfs.SeaweedFS, log_file: Path) -> Iterator[str]:
    port = free_port()
    env = swfs.environment_without_aws(
        {
            **server.role_env("scorer"),
            "DO_NOT_TRACK": "1",
            "SCORER_REGISTRY_URI": server.registry_uri,
            "SCORER_API_KEY": secrets.token_urlsafe(24),
            "SCORER_POLL_INTERVAL_SECONDS": str(SCORER_POLL_SECONDS),
            "SCORER_INFERENCE_LOG_FLUSH_SECONDS": str(SCORER_FLUSH_SECONDS),
            "SCORER_RETRAIN_MODE": "disabled",
            "SCORER_STORAGE_ATTEMPTS": "1",
            "SCORER_GRACEFUL_SHUTDOWN_SECONDS": "2",
            "SCORER_SHUTDOWN_FLUSH_SECONDS": "3",
        }
    )
    command = [sys.executable, "-m", "service", "--host", LOOPBACK, "--port", str(port)]
    url = f"http://{LOOPBACK}:{port}"
    with running_process(
        command,
        ready_url=f"{url}/ready",
        env=env,
        log=log_file,
        statuses={200},
        timeout=60,
        grace=10,
        name="scorer",
    ) as process:
        yield url
    assert process.returncode is not None


def test_the_loop_on_s3_with_per_role_credentials(store: swfs.SeaweedFS, tmp_path: Path) -> None:
    root = store.registry_uri
    training_env = swfs.environment_without_aws(store.role_env("training"))
    drift_env = swfs.environment_without_aws(
        {**store.role_env("drift"), "DO_NOT_TRACK": "1", "MONITORING_RETRAIN_MODE": "disabled"}
    )

    first = run_json(["-m", "training", "train", "--raw", RAW, "--registry", root], training_env)
    assert first["status"] == "trained" and first["promoted"] is True, first

    scorer_log = tmp_path / "scorer.log"
    with scorer(store, scorer_log) as url:
        assert served_version(url) == first["version"]

        started = datetime.now(UTC) - timedelta(seconds=1)
        traffic = run_json(
            [
                "-m",
                "tools",
                "simulate",
                "--url",
                url,
                "--rate",
                str(RATE),
                "--duration",
                str(DURATION),
                "--drift",
                "night-rural",
                "--feedback-share",
                "0.2",
                "--no-progress",
            ],
            swfs.environment_without_aws(),
        )
        assert traffic["errors"] == 0 and traffic["ok"] >= 1000, traffic
        assert traffic["feedback"]["sent"] > 100, traffic
        assert wait_for_flush(url, traffic["ok"], timeout=30) >= traffic["ok"]

        # The demo's drift settings: the window is exactly the traffic phase.
        end = datetime.now(UTC) + timedelta(seconds=1)
        report = run_json(
            [
                "-m",
                "monitoring",
                "drift",
                "--registry",
                root,
                "--until",
                end.isoformat(),
                "--window-hours",
                str((end - started).total_seconds() / 3600),
            ],
            drift_env,
        )
        assert report["status"] == "drift" and report["dataset_drift"] is True, report
        assert report["rows"]["current"] >= 1000
        assert report["retrain"]["triggered"] is False  # MONITORING_RETRAIN_MODE=disabled
        urls = report["report"]
        assert set(urls) == {"html", "snapshot", "summary"}
        admin = store.client()
        for url_of_file in urls.values():
            assert url_of_file.startswith(root + layout.DRIFT_REPORT_PREFIX)
            key = url_of_file.removeprefix(f"s3://{store.bucket}/")
            admin.head_object(Bucket=store.bucket, Key=key)

        # The gate's decision is tested elsewhere (tests/training): here the point is
        # that what training promotes reaches the scorer through the bucket.
        second = run_json(
            [
                "-m",
                "training",
                "train",
                "--raw",
                RAW,
                "--registry",
                root,
                "--force",
                "--promote",
                "force",
            ],
            training_env,
        )
        assert second["status"] == "trained" and second["promoted"] is True, second
        assert second["version"] != first["version"]
        assert second["feedback_rows"] > 100  # the scorer's labels, read by training
        wait_for(lambda: served_version(url) == second["version"], timeout=30, step=0.25)
        assert scorer_metric(url, "triage_inference_log_rows_dropped_total") == 0

    scorer_output = scorer_log.read_text(errors="replace")
    assert "access denied" not in scorer_output.lower(), scorer_output[-3000:]
    assert processes_mentioning(f"--port {url.rsplit(':', 1)[1]}") == []
