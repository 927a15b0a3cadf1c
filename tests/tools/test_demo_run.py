"""``python -m tools demo`` (``make demo``), the README's main command, run as a user runs it:
a fresh folder, embedded defaults (smaller data, for time), no network. It must end
in time, tell the story (no drift, then drift and a retrain, both runs in the Evidently
UI, which ``--keep-ui`` keeps up after the report until Ctrl-C), and leave no process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support import processes_mentioning
from tools.processes import http_get

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
    command = [sys.executable, "-m", "tools", "demo", "--workdir", str(workdir)]
    command += ["--accidents", "6000", "--rate", "200", "--seconds", "6", "--keep-ui"]
    with (tmp_path / "stderr.log").open("w") as stderr:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "DO_NOT_TRACK": "1"},
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
        # A demo that never gets to its report must not hold the suite: killed after.
        watchdog = threading.Timer(420, process.kill)
        watchdog.start()
        try:
            assert process.stdout is not None
            printed = []
            for line in process.stdout:
                printed.append(line)
                if "The Evidently UI stays up until Ctrl-C." in line:
                    break
            ui_status = None
            if printed and "stays up until Ctrl-C" in printed[-1]:
                result = json.loads((workdir / "demo-result.json").read_text())
                # --keep-ui: the UI still answers after the demo printed its report.
                ui_page = result["drift_run_drifted"]["evidently_ui"]["url"]
                ui_status = http_get(ui_page, timeout=10)[0]
                process.send_signal(signal.SIGTERM)
            rest, _ = process.communicate(timeout=60)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
    completed = subprocess.CompletedProcess(
        command, process.returncode, "".join(printed) + rest, (tmp_path / "stderr.log").read_text()
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert ui_status == 200
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

    # Both runs' reports are in the Evidently UI the demo started; its URL is printed.
    ui = result["evidently_ui"]
    assert ui.startswith("http://127.0.0.1:") and f"Evidently UI       {ui}" in completed.stdout
    for run in (normal, drifted):
        stored = run["evidently_ui"]
        assert stored["stored"] is True and stored["url"].startswith(f"{ui}/projects/")
        assert stored["url"] in completed.stdout
    assert "The Evidently UI stays up until Ctrl-C." in completed.stdout
    assert not _listening(ui)

    assert not _listening(result["scorer"]["url"])
    if result["pushgateway"].startswith("http://"):
        assert not _listening(result["pushgateway"])
        assert any(m.startswith("triage_drift_dataset_drift") for m in result["pushed_metrics"])
    port = result["scorer"]["url"].rsplit(":", 1)[1]
    assert processes_mentioning(f"--port {port}") == []
    assert processes_mentioning(str(workdir)) == []
