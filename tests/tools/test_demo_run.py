"""``python -m tools demo`` (``make demo``), the README's main command, run as a user runs it:
a fresh folder, embedded defaults (smaller data, for time), no network. It must end
in time, tell the story (no drift, then drift and a retrain), and leave no process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import processes_mentioning

pytestmark = [pytest.mark.slow, pytest.mark.servers]

# `python -m tools` runs from a checkout: the repository root.
ROOT = Path(__file__).resolve().parents[2]


def _listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def test_demo_tells_the_whole_story_and_cleans_up(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools",
            "demo",
            "--workdir",
            str(workdir),
            "--accidents",
            "6000",
            "--rate",
            "200",
            "--seconds",
            "6",
        ],
        capture_output=True,
        text=True,
        timeout=420,
        env={**os.environ, "DO_NOT_TRACK": "1"},
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Demo finished in" in completed.stdout
    result = json.loads((workdir / "demo-result.json").read_text())
    assert result["seconds"] < 300

    normal, drifted = result["drift_run_normal"], result["drift_run_drifted"]
    assert normal["status"] == "no-drift" and normal["rows"] >= 1000
    assert normal["retrain"]["triggered"] is False
    assert drifted["status"] == "drift" and drifted["dataset_drift"] is True
    assert {"lum", "hour"} <= set(drifted["drifted_features"])
    retrain = drifted["retrain"]
    assert retrain["triggered"] is True
    # The label guard lets it train (the feedback labels are new data); the promotion
    # gate decides, and the scorer serves whatever production is afterwards.
    assert retrain["training"]["status"] == "trained"
    served = result["served_version"]
    if retrain["training"]["promoted"]:
        assert served["picked_up"] is True and served["after"] == retrain["training"]["version"]
    else:
        assert served["after"] == served["before"]
    for phase in ("normal_traffic", "drifted_traffic"):
        assert result[phase]["errors"] == 0
    assert result["drifted_traffic"]["feedback"]["sent"] > 300
    for run in (normal, drifted):
        assert Path(run["report"]["html"].removeprefix("file://")).is_file()
    # The labels of the drifted phase measure the first model's realised quality.
    quality = drifted["quality"]
    first = result["first_model"]["version"]
    assert quality["labels"]["matched"] == quality["versions"][first]["matched"] > 300
    assert quality["versions"][first]["figures"]["accuracy"] is not None
    assert Path(quality["versions"][first]["report"].removeprefix("file://")).is_file()
    assert "realised quality" in completed.stdout

    assert not _listening(result["scorer"]["url"])
    if result["pushgateway"].startswith("http://"):
        assert not _listening(result["pushgateway"])
        assert any(m.startswith("triage_drift_dataset_drift") for m in result["pushed_metrics"])
    port = result["scorer"]["url"].rsplit(":", 1)[1]
    assert processes_mentioning(f"--port {port}") == []
    assert processes_mentioning(str(workdir)) == []
