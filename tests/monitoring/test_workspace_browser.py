"""The Evidently UI as a person uses it, in a real browser: headless Chromium (Debian's
``chromium``) opens the UI that the demo starts (``tools.demo.evidently_ui``), after two
real drift runs stored their snapshots in it, and reads what the pages show once the
single-page app has rendered them: the project in the list, both runs in the project's
reports, the drifted run's report, the drift-share dashboard.

Screenshots go to the test's temporary folder; ``TRIAGE_UI_SCREENSHOTS=docs/img``
writes them where docs/drift.md shows them from.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.storage import Storage
from monitoring.job import run_drift
from monitoring.settings import MonitoringSettings
from tests.monitoring.conftest import NOW
from tests.monitoring.support import TrainedModel, live_rows, write_inference_logs
from tools.demo import evidently_ui

pytestmark = [pytest.mark.slow, pytest.mark.servers]

CHROMIUM = "chromium"
ROWS = 1200
SCREENSHOTS = os.environ.get("TRIAGE_UI_SCREENSHOTS", "")
# Virtual time, not wall-clock time: Chromium advances its clock only when the page is
# idle (no network or task pending), so a slow machine renders the same page.
RENDER_BUDGET_MS = 20_000


def _chromium() -> str:
    binary = shutil.which(CHROMIUM)
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is not installed (Debian package chromium)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return binary


def _browse(url: str, profile: Path, *action: str) -> str:
    """Chromium headless, on loopback only, without a sandbox (containers and CI run
    as root), a GPU or background networking; returns its standard output."""
    assert url.startswith("http://127.0.0.1:")
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
        f"--virtual-time-budget={RENDER_BUDGET_MS}",
        *action,
        url,
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def page_text(url: str, profile: Path) -> str:
    """The rendered page's visible text (the DOM after the app ran), one line."""
    dom = _browse(url, profile, "--dump-dom")
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom))).strip()


def screenshot(url: str, profile: Path, path: Path) -> Path:
    _browse(url, profile, f"--screenshot={path}")
    return path


def test_a_person_finds_the_project_the_runs_and_the_drift_in_the_ui(
    tmp_path: Path,
    trained_model: TrainedModel,
    live_storage: Storage,
    make_settings: Callable[..., MonitoringSettings],
) -> None:
    _chromium()
    profile = tmp_path / "chromium-profile"
    shots = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with evidently_ui(tmp_path / "demo") as ui:
        # Two runs, two days apart, as the CronJob makes them: normal traffic, then drift.
        earlier = NOW - timedelta(days=2)
        summaries: list[dict[str, Any]] = []
        for end, drift in ((earlier, None), (NOW, "night-rural")):
            rows = live_rows(trained_model, ROWS, seed=7, drift=drift)
            write_inference_logs(live_storage, rows, end=end)
            settings = make_settings(window_end=end, evidently_ui_url=ui)
            summaries.append(run_drift(settings, now=end))
        normal, drifted = summaries
        assert normal["status"] == "no-drift" and drifted["status"] == "drift"
        stored = [summary["evidently_ui"] for summary in summaries]
        assert all(record["stored"] for record in stored), stored
        project = stored[0]["project_id"]
        project_name = MonitoringSettings.model_fields["evidently_ui_project"].default

        # The home page lists the project (its name is in no URL: the app drew it).
        assert project_name in page_text(f"{ui}/", profile)

        # The project's reports list both runs, by their run id and kind.
        reports = page_text(f"{ui}/projects/{project}/reports", profile)
        for record in stored:
            # The run's name then its id; the run id again in the metadata.
            assert f"drift {record['run_id']} {record['snapshot_id']}" in reports, reports[:2000]
            assert re.search(rf'"\s*run_id\s*"\s*:\s*"\s*{record["run_id"]}\s*"', reports)
        assert "1–2 of 2" in reports

        # The drifted run's report, opened from the URL its summary gives.
        report = page_text(stored[1]["url"], profile)
        assert "Dataset Drift is detected" in report, report[:2000]
        drifted_count = drifted["drifted_columns"]
        assert f"{drifted_count} Drifted Columns" in report
        for feature, column in drifted["columns"].items():
            verdict = "detected" if column["drifted"] else "not detected"
            assert f"Drift in column '{feature}' Data drift {verdict}." in report, feature
        assert {"lum", "hour"} <= set(drifted["drifted_features"])
        # ... and the normal run's says it found none.
        assert "Dataset Drift is NOT detected" in page_text(stored[0]["url"], profile)

        # The dashboard: the last run's drift share, and the share over time.
        dashboard = page_text(f"{ui}/projects/{project}", profile)
        assert "Drift share, last run" in dashboard and "Share of drifted features" in dashboard
        share = drifted["share_of_drifted_columns"]
        last = re.search(r"Drift share, last run ([0-9.]+) share of drifted features", dashboard)
        assert last is not None, dashboard[:2000]
        assert float(last.group(1)) == pytest.approx(share, abs=0.005)

        images = [
            screenshot(f"{ui}/projects/{project}", profile, shots / "evidently-ui.png"),
            screenshot(stored[1]["url"], profile, shots / "evidently-ui-report.png"),
        ]
    for image in images:
        data = image.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
