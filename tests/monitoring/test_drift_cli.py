"""``python -m monitoring drift`` as the CronJob runs it: settings from MONITORING_*
variables, the summary as JSON on stdout, JSON logs on stderr, and one-line errors
with exit code 1 (job failed) or 2 (bad settings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import layout
from core.storage import Storage, open_storage
from tests.monitoring.conftest import NOW
from tests.monitoring.support import TrainedModel, live_rows, write_inference_logs
from tests.monitoring.test_pushgateway import samples_of


def _drift(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MONITORING_")}
    return subprocess.run(
        [sys.executable, "-m", "monitoring", "drift", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, "DO_NOT_TRACK": "1", **env},
    )


@pytest.mark.servers
def test_insufficient_data_exits_0_and_pushes_the_fact(
    trained_model: TrainedModel, live_storage: Storage, live_root: Path, pushgateway: str
) -> None:
    write_inference_logs(live_storage, live_rows(trained_model, 25, seed=4), end=NOW)
    completed = _drift(
        {
            "MONITORING_REGISTRY_URI": trained_model.registry_uri,
            "MONITORING_INFERENCE_LOG_URI": f"file://{live_root}",
            "MONITORING_REPORT_URI": str(live_root),
            "MONITORING_PUSHGATEWAY_URL": pushgateway,
            "MONITORING_WINDOW_END": NOW.isoformat(),
        }
    )
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["status"] == "insufficient-data" and summary["rows"]["current"] == 25
    for line in completed.stderr.strip().splitlines():
        assert json.loads(line)["logger"]  # every log line is a JSON object
    samples = samples_of(pushgateway)
    assert samples[("triage_drift_insufficient_data", ())] == 1
    assert samples[("triage_drift_current_rows", ())] == 25
    assert samples[("triage_drift_last_success_timestamp_seconds", ())] > 0


def test_no_production_model_is_a_one_line_failure(tmp_path: Path) -> None:
    completed = _drift({"MONITORING_REGISTRY_URI": str(tmp_path)})
    assert completed.returncode == 1
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: model accident-severity has no production version")


def test_an_alias_of_the_wrong_shape_is_a_one_line_failure(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path))
    key = layout.alias_key(layout.DEFAULT_MODEL_NAME, layout.PRODUCTION_ALIAS)
    storage.write_bytes(key, b'{"version": null}')
    completed = _drift({"MONITORING_REGISTRY_URI": str(tmp_path)})
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    last = completed.stderr.strip().splitlines()[-1]
    assert last == (
        f"error: {storage.url_for(key)}: invalid alias: version: Input should be a valid "
        "string (found null)"
    )


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"MONITORING_DRIFT_SHARE": "2"}, (), "error: invalid settings: drift_share"),
        (
            {},
            ("--retrain-mode", "sometimes"),
            "error: argument --retrain-mode: invalid choice: 'sometimes' (choose from "
            "'local', 'kubernetes', 'disabled')",
        ),
        ({"MONITORING_RETRAIN_MODE": "sometimes"}, (), "error: invalid settings: retrain_mode"),
        ({"MONITORING_MIN_ROWS": "2000", "MONITORING_MAX_CURRENT_ROWS": "1000"}, (), "below"),
        ({}, ("--until", "yesterday"), "error: argument --window-end/--until: not an ISO 8601"),
    ],
)
def test_bad_settings_exit_2_with_one_line(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    completed = _drift(env, *args)
    assert completed.returncode == 2
    assert message in completed.stderr.strip().splitlines()[-1]
