"""The drift job on S3 (a real SeaweedFS, the store the chart deploys): inference logs
read from a bucket, reports and the cooldown record written to it, the registry on
another root. With the chart's per-role credentials: tests/seaweedfs/test_roles.py."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from core import layout
from core.storage import open_storage
from monitoring import drift
from monitoring.job import run_drift
from monitoring.reports import LAST_RETRAIN_KEY
from monitoring.settings import MonitoringSettings
from tests.monitoring.conftest import NOW
from tests.monitoring.support import TrainedModel, live_rows, write_inference_logs

pytestmark = pytest.mark.servers


def test_window_and_reports_through_s3(
    s3_bucket: str, trained_model: TrainedModel, make_settings: Callable[..., MonitoringSettings]
) -> None:
    storage = open_storage(s3_bucket)
    write_inference_logs(storage, live_rows(trained_model, 300, seed=3), end=NOW, files=3)
    day = f"{layout.INFERENCE_LOG_PREFIX}date={NOW:%Y-%m-%d}/"
    storage.write_bytes(day + "truncated.parquet", b"PAR1 and then nothing")
    live = drift.load_window(storage, drift.Window.ending(NOW, 24), max_rows=1000, seed=0)
    assert len(live.frame) == 300 and live.unreadable_files == [day + "truncated.parquet"]

    settings = make_settings(inference_log_uri=s3_bucket, report_uri=s3_bucket, min_rows=500)
    summary = run_drift(settings, now=NOW)
    assert summary["status"] == "insufficient-data"
    assert summary["files"] == {
        "read": 3,
        "unreadable": 1,
        "unreadable_keys": [day + "truncated.parquet"],
    }
    key = layout.drift_report_prefix(NOW) + "summary.json"
    assert summary["report"]["summary"] == f"{s3_bucket.rstrip('/')}/{key}"
    assert json.loads(storage.read_bytes(key))["rows"]["current"] == 300
    assert not storage.exists(LAST_RETRAIN_KEY)
