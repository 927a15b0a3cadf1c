"""Realised quality on S3 (a real SeaweedFS): labels and inference logs read from a
bucket, a compacted day read as its parts, the quality report written beside the
drift report."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core import layout
from core.registry import Registry
from core.storage import open_storage
from monitoring.compaction import compact_day
from monitoring.job import run_drift
from monitoring.reports import quality_html
from tests.monitoring.conftest import NOW
from tests.monitoring.support import NEW, Traffic
from tests.monitoring.test_quality import Settings

pytestmark = pytest.mark.servers


def test_quality_through_s3_with_a_compacted_day(
    s3_bucket: str, make_settings: Settings, versions: Registry
) -> None:
    storage = open_storage(s3_bucket)
    traffic = Traffic(storage)
    yesterday = [traffic.predict(NOW - timedelta(days=1, hours=i), NEW, 0.9) for i in range(5)]
    traffic.flush()
    traffic.label(NOW - timedelta(hours=20), [(rid, 1) for rid in yesterday[:3]])
    day = (NOW - timedelta(days=1)).date()
    for prefix in (layout.INFERENCE_LOG_PREFIX, layout.FEEDBACK_PREFIX):
        compacted = compact_day(storage, prefix, day, rows_per_file=1000, now=NOW)
        assert compacted is not None and compacted.manifest is not None
    today = [traffic.predict(NOW - timedelta(minutes=i + 1), NEW, 0.2) for i in range(4)]
    traffic.flush()
    traffic.label(NOW - timedelta(seconds=1), [(rid, 0) for rid in today] + [(yesterday[0], 0)])

    settings = make_settings(
        inference_log_uri=s3_bucket, report_uri=s3_bucket, compaction_enabled=False
    )
    summary = run_drift(settings, now=NOW)
    quality = summary["quality"]["versions"][NEW]
    assert (quality["served"], quality["matched"], quality["duplicate"]) == (9, 7, 1)
    assert quality["figures"]["accuracy"] == 1.0
    assert quality["confusion_matrix"] == [[4, 0], [0, 3]]
    assert storage.exists(layout.drift_report_prefix(NOW) + quality_html(NEW))
