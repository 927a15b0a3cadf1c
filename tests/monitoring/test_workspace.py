"""Drift snapshots stored in a real Evidently UI (``evidently ui``, started as the demo
starts it): the project found or created once whatever the concurrency, the dashboard's
panels, the run's report page, and a UI that is down, silent or refuses the secret,
which never fails the drift run."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from core.registry import Registry
from core.storage import Storage, open_storage
from monitoring import drift, push, workspace
from monitoring.job import run_drift
from monitoring.settings import MonitoringSettings
from monitoring.workspace import EvidentlyUi, SnapshotKind, project_id, store_snapshot
from tests.monitoring.conftest import NOW
from tests.monitoring.support import (
    MODEL_NAME,
    NEW,
    Traffic,
    TrainedModel,
    live_rows,
    write_inference_logs,
)
from tests.support import LOOPBACK, free_port, running_process
from tools.demo import evidently_ui
from tools.processes import http_get, http_post

ROWS = 1200
Settings = Callable[..., MonitoringSettings]


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with evidently_ui(tmp_path_factory.mktemp("evidently-ui")) as url:
        yield url


@pytest.fixture
def project_name() -> str:
    """A project of this test's own in the module's UI."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def drift_snapshot(trained_model: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real drift report's snapshot, made as the drift job makes it."""
    live = open_storage(str(tmp_path_factory.mktemp("live")))
    write_inference_logs(live, live_rows(trained_model, ROWS, seed=7, drift="night-rural"), end=NOW)
    registry = Registry(open_storage(trained_model.registry_uri), MODEL_NAME)
    version = drift.production_version(registry)
    reference, _ = drift.load_reference(registry, version, max_rows=2000, seed=0)
    window = drift.load_window(live, drift.Window.ending(NOW, 24), max_rows=ROWS, seed=0)
    snapshot, _ = drift.run_report(
        reference, window.frame, drift_share=0.1, column_threshold=None, model_version=version
    )
    return snapshot


def _get(url: str) -> Any:
    status, body = http_get(url, timeout=10)
    assert status == 200, (url, status, body[:300])
    return json.loads(body)


def _projects(ui: str, name: str) -> list[dict[str, Any]]:
    return [p for p in _get(f"{ui}/api/v2/projects") if p["name"] == name]


def _snapshots(ui: str, project: uuid.UUID | str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = _get(f"{ui}/api/projects/{project}/snapshots")
    return result


def test_a_drift_run_stores_its_snapshot_in_the_ui_project(
    ui: str,
    project_name: str,
    trained_model: TrainedModel,
    live_storage: Storage,
    make_settings: Settings,
) -> None:
    write_inference_logs(
        live_storage, live_rows(trained_model, ROWS, seed=7, drift="night-rural"), end=NOW
    )
    summary = run_drift(
        make_settings(evidently_ui_url=ui, evidently_ui_project=project_name), now=NOW
    )
    stored = summary["evidently_ui"]
    assert stored["stored"] is True, stored
    # The run is named by its report folder, where the HTML and summary.json are.
    run_id = summary["report"]["summary"].rstrip("/").rsplit("/", 2)[-2]
    assert stored["run_id"] == run_id
    [project] = _projects(ui, project_name)
    assert project["id"] == stored["project_id"] == str(project_id(project_name))
    [snapshot] = _snapshots(ui, project["id"])
    assert snapshot["id"] == stored["snapshot_id"]
    assert snapshot["name"] == f"drift {run_id}"
    assert snapshot["tags"] == ["drift"]
    assert snapshot["metadata"]["run_id"] == run_id
    assert snapshot["metadata"]["model_version"] == summary["model"]["version"]
    assert stored["url"] == f"{ui}/projects/{project['id']}/reports/{snapshot['id']}"
    status, page = http_get(stored["url"], timeout=10)
    assert status == 200 and b"<html" in page.lower()
    # The drift share over time, and no quality panel before a quality run.
    dashboard = _get(f"{ui}/api/v2/dashboards/{project['id']}")
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert titles == ["Drift share, last run", "Share of drifted features"]
    metric = dashboard["panels"][1]["values"][0]
    assert metric["metric"] == "evidently:metric_v2:DriftedColumnsCount"
    assert metric["metric_labels"] == {"value_type": "share"} and metric["tags"] == ["drift"]


def test_the_stored_run_and_the_ui_state_are_pushed(
    ui: str, project_name: str, drift_snapshot: Any, make_settings: Settings
) -> None:
    settings = make_settings(evidently_ui_url=ui, evidently_ui_project=project_name)
    stored = store_snapshot(settings, SnapshotKind.DRIFT, drift_snapshot, run_id="run-1")
    assert stored is not None
    text = generate_latest(push.build_registry({"evidently_ui": stored})).decode()
    assert "triage_drift_ui_snapshot_stored 1.0" in text
    assert (
        f'triage_drift_report_info{{project_id="{stored["project_id"]}",run="run-1",'
        f'snapshot_id="{stored["snapshot_id"]}"}} 1.0'
    ) in text
    failed = {"stored": False, "run_id": "run-2", "error": "down"}
    text = generate_latest(push.build_registry({"evidently_ui": failed})).decode()
    assert "triage_drift_ui_snapshot_stored 0.0" in text
    assert "triage_drift_report_info" not in text
    text = generate_latest(push.build_registry({"evidently_ui": None})).decode()
    assert "triage_drift_ui_snapshot_stored" not in text


class _LooksBeforeTheOtherCreates(EvidentlyUi):
    """A run that looked for the project just before another run created it: it finds
    nothing, whatever the UI holds by the time it creates (the race, made certain)."""

    def find_project(self, project: uuid.UUID) -> dict[str, Any] | None:
        return None


def test_runs_that_both_find_no_project_create_one(ui: str, project_name: str) -> None:
    first = _LooksBeforeTheOtherCreates(ui).ensure_project(project_name)
    second = _LooksBeforeTheOtherCreates(ui).ensure_project(project_name)
    assert first == second
    assert len(_projects(ui, project_name)) == 1


def test_racing_runs_store_every_snapshot_in_one_project(
    ui: str, project_name: str, drift_snapshot: Any, make_settings: Settings
) -> None:
    settings = make_settings(evidently_ui_url=ui, evidently_ui_project=project_name)
    runs = 6
    start = threading.Barrier(runs)
    results: list[dict[str, Any] | None] = [None] * runs

    def run(index: int) -> None:
        start.wait()
        results[index] = store_snapshot(
            settings, SnapshotKind.DRIFT, drift_snapshot, run_id=f"run-{index}"
        )

    threads = [threading.Thread(target=run, args=(index,)) for index in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(result and result["stored"] for result in results), results
    [project] = _projects(ui, project_name)
    names = sorted(snapshot["name"] for snapshot in _snapshots(ui, project["id"]))
    assert names == sorted(f"drift run-{index}" for index in range(runs))
    panels = _get(f"{ui}/api/v2/dashboards/{project['id']}")["panels"]
    assert len(panels) == len({panel["id"] for panel in panels}) == 2


def test_panels_are_added_by_kind_and_a_persons_panels_are_kept(
    ui: str, project_name: str, drift_snapshot: Any, make_settings: Settings
) -> None:
    settings = make_settings(evidently_ui_url=ui, evidently_ui_project=project_name)
    assert store_snapshot(settings, SnapshotKind.DRIFT, drift_snapshot, run_id="a")
    client = EvidentlyUi(ui)
    project = project_id(project_name)
    dashboard = client.dashboard(project)
    from evidently.sdk.panels import text_panel

    dashboard.panels.append(text_panel("A person's note"))
    client._call("POST", f"/api/v2/dashboards/{project}", dashboard.json().encode())
    # A quality run (the quality job's snapshot is tagged "quality") adds its panel.
    assert store_snapshot(settings, SnapshotKind.QUALITY, drift_snapshot, run_id="b")
    titles = [panel.title for panel in client.dashboard(project).panels]
    assert titles == [
        "Drift share, last run",
        "Share of drifted features",
        "A person's note",
        "Model quality from feedback labels",
    ]


def test_a_project_keeps_the_newest_runs_of_each_kind(
    ui: str, project_name: str, drift_snapshot: Any, make_settings: Settings
) -> None:
    settings = make_settings(
        evidently_ui_url=ui, evidently_ui_project=project_name, evidently_ui_max_runs=2
    )
    quality = store_snapshot(
        settings, SnapshotKind.QUALITY, drift_snapshot, run_id="q", timestamp=NOW
    )
    assert quality and quality["pruned"] == 0
    for day in range(4):
        stored = store_snapshot(
            settings,
            SnapshotKind.DRIFT,
            drift_snapshot,
            run_id=f"day-{day}",
            timestamp=NOW + timedelta(days=day),
        )
        assert stored and stored["stored"] is True
    assert stored["pruned"] == 1
    names = sorted(s["name"] for s in _snapshots(ui, project_id(project_name)))
    # The two newest drift runs, and the quality run: another kind, its own count.
    assert names == ["drift day-2", "drift day-3", "quality q"]


def test_a_ui_that_is_down_does_not_fail_the_drift_run(
    trained_model: TrainedModel, live_storage: Storage, make_settings: Settings
) -> None:
    write_inference_logs(live_storage, live_rows(trained_model, ROWS, seed=7), end=NOW)
    down = f"http://{LOOPBACK}:{free_port()}"
    summary = run_drift(make_settings(evidently_ui_url=down), now=NOW)
    assert summary["status"] == "no-drift"
    stored = summary["evidently_ui"]
    assert stored["stored"] is False
    assert stored["error"].startswith(f"cannot reach the Evidently UI at {down}")
    assert json.loads(live_storage.read_bytes(_summary_key(summary)))["evidently_ui"] == stored


def _summary_key(summary: dict[str, Any]) -> str:
    url: str = summary["report"]["summary"]
    return url[url.index("reports/") :]


def test_a_silent_ui_times_out(drift_snapshot: Any, make_settings: Settings) -> None:
    with socket.socket() as listener:
        # Accepts connections (the kernel's backlog) and never answers.
        listener.bind((LOOPBACK, 0))
        listener.listen(8)
        silent = f"http://{LOOPBACK}:{listener.getsockname()[1]}"
        settings = make_settings(evidently_ui_url=silent, evidently_ui_timeout_seconds=0.5)
        stored = store_snapshot(settings, SnapshotKind.DRIFT, drift_snapshot, run_id="r")
    assert stored is not None and stored["stored"] is False
    assert "timed out" in stored["error"]


def test_a_ui_with_a_secret_refuses_writes_without_it(
    tmp_path: Path, drift_snapshot: Any, make_settings: Settings
) -> None:
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    command = [sys.executable, "-m", "evidently.cli", "ui", "--host", LOOPBACK]
    command += ["--port", str(port), "--workspace", str(tmp_path / "ws"), "--secret", "s3cr3t"]
    with running_process(command, ready_url=f"{url}/api/version", env={**os.environ}, timeout=60):
        refused = store_snapshot(
            make_settings(evidently_ui_url=url), SnapshotKind.DRIFT, drift_snapshot, run_id="r"
        )
        assert refused is not None and refused["stored"] is False
        assert "HTTP 403" in refused["error"] or "HTTP 401" in refused["error"]
        allowed = store_snapshot(
            make_settings(evidently_ui_url=url, evidently_ui_secret="s3cr3t"),
            SnapshotKind.DRIFT,
            drift_snapshot,
            run_id="r",
        )
        assert allowed is not None and allowed["stored"] is True


def test_no_url_stores_nothing(drift_snapshot: Any, make_settings: Settings) -> None:
    assert store_snapshot(make_settings(), SnapshotKind.DRIFT, drift_snapshot, run_id="r") is None


@pytest.mark.parametrize("url", ["ftp://host/", "file:///etc/passwd", "localhost:8000"])
def test_settings_refuse_a_url_that_is_not_http(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        MonitoringSettings(evidently_ui_url=url)


def test_project_ids_follow_the_name() -> None:
    assert project_id("accident-triage") == project_id("accident-triage")
    assert project_id("accident-triage") != project_id("accident-triage-2")
    assert (
        workspace.report_url("http://ui:8000/", "p", "s") == "http://ui:8000/projects/p/reports/s"
    )


def _series(ui: str, project: str, panel: dict[str, Any]) -> list[dict[str, Any]]:
    """The data the UI draws a panel with, asked as its page asks for it."""
    filters = [
        {key: value[key] for key in ("tags", "metadata", "metric", "metric_labels")}
        for value in panel["values"]
    ]
    body = json.dumps({"series_filter": filters}).encode()
    status, answer = http_post(f"{ui}/api/v2/snapshots/{project}/data_series_batch", body)
    assert status in (200, 201), answer[:300]  # Litestar answers a POST with 201
    series: list[dict[str, Any]] = json.loads(answer)["series"]
    return series


def test_a_drift_run_stores_each_versions_quality_snapshot_and_its_panel_has_data(
    ui: str, project_name: str, make_settings: Settings, live_storage: Storage, versions: Any
) -> None:
    traffic = Traffic(live_storage)
    ids = [traffic.predict(NOW - timedelta(minutes=i + 1), NEW, 0.8) for i in range(40)]
    traffic.flush()
    traffic.label(NOW, [(rid, i % 2) for i, rid in enumerate(ids)])
    settings = make_settings(
        evidently_ui_url=ui,
        evidently_ui_project=project_name,
        quality_min_labels=10,
        compaction_enabled=False,
    )
    summary = run_drift(settings, now=NOW)
    stored = summary["quality"]["versions"][NEW]["evidently_ui"]
    assert stored["stored"] is True, stored
    project = str(project_id(project_name))
    [snapshot] = [s for s in _snapshots(ui, project) if s["tags"] == ["quality"]]
    assert snapshot["id"] == stored["snapshot_id"]
    assert snapshot["metadata"]["model_version"] == NEW
    dashboard = _get(f"{ui}/api/v2/dashboards/{project}")
    [panel] = [p for p in dashboard["panels"] if p["title"] == "Model quality from feedback labels"]
    drawn = {s["metric_type"].rsplit(":", 1)[-1]: s["values"] for s in _series(ui, project, panel)}
    figures = summary["quality"]["versions"][NEW]["figures"]
    # Half the labels say prioritaire and every prediction did: accuracy 0.5.
    assert drawn["Accuracy"] == [pytest.approx(figures["accuracy"])] == [pytest.approx(0.5)]
    assert set(drawn) >= {"Accuracy", "Precision", "Recall", "F1Score"}
