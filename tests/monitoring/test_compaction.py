"""Compaction and retention: a finished day's small files become a few parts that
readers prefer, every row read once whatever runs at the same time, and old days,
reports and replaced files deleted by the rules, never the window's data."""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import contract, layout, partitions
from core.storage import FileStorage, Storage, open_storage
from core.tables import FeedbackLabel, LogChunk, feedback_parquet, inference_log_parquet
from monitoring import compaction
from monitoring.cli import main
from monitoring.reports import LAST_RETRAIN_KEY
from monitoring.settings import MonitoringSettings
from tests.factories import issued_ids
from tests.support import run_together
from training.feedback import load_feedback

DAY = date(2026, 12, 5)
NEXT_RUN = datetime(2026, 12, 6, 2, 30, tzinfo=UTC)
ROW = contract.example_row()


def write_log_files(
    storage: Storage, day: date, files: int, rows: int, *, host: str = "pod"
) -> list[str]:
    """``files`` inference-log files of ``rows`` rows each, scored during ``day``."""
    ids: list[str] = []
    start = datetime.combine(day, datetime.min.time(), UTC)
    for index in range(files):
        scored = start + timedelta(minutes=10 * index)
        batch = issued_ids(rows, scored)
        chunk = LogChunk(
            request_ids=batch,
            timestamp=scored.timestamp(),
            model_version="v1",
            threshold=0.5,
            probabilities=np.linspace(0, 1, rows),
            features=contract.encode_rows([ROW] * rows),
            latitudes=[ROW["lat"]] * rows,
            longitudes=[ROW["long"]] * rows,
        )
        key = layout.partitioned_key(layout.INFERENCE_LOG_PREFIX, scored, f"{host}-{index:03d}")
        storage.write_bytes(key, inference_log_parquet([chunk]))
        ids.extend(batch)
    return ids


def logged_ids(storage: Storage, day: date) -> list[str]:
    """Every request id the day's files hold, as a reader resolves them."""
    read = partitions.read_day(
        storage,
        layout.INFERENCE_LOG_PREFIX,
        day,
        lambda data: pd.read_parquet(io.BytesIO(data), columns=[layout.REQUEST_ID]),
    )
    return [rid for frame in read.results for rid in frame[layout.REQUEST_ID]]


def settings(**overrides: object) -> MonitoringSettings:
    values: dict[str, object] = {"registry_uri": "unused", "compaction_rows_per_file": 1000}
    values.update(overrides)
    return MonitoringSettings(**values)  # type: ignore[arg-type]


def run(storage: Storage, now: datetime, **overrides: object) -> dict[str, object]:
    return compaction.run_compaction(settings(**overrides), storage, storage, now=now)


def test_a_finished_day_becomes_a_few_parts_read_instead_of_its_files(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    ids = write_log_files(storage, DAY, files=40, rows=60)
    today = write_log_files(storage, NEXT_RUN.date(), files=3, rows=5)
    summary = run(storage, NEXT_RUN)
    assert summary["inference-logs"]["days_compacted"] == ["2026-12-05"]  # type: ignore[index]
    files = partitions.day_files(storage, layout.INFERENCE_LOG_PREFIX, DAY)
    assert files.manifest is not None and files.manifest.rows == 2400
    # 2,400 rows in parts of at most 1,000: three parts, read in the files' order.
    assert files.keys == list(files.manifest.parts) and len(files.keys) == 3
    assert logged_ids(storage, DAY) == ids
    # Today is not finished: left as it is. The raw files stay until the grace passed.
    assert logged_ids(storage, NEXT_RUN.date()) == today
    assert len(storage.list(layout.day_prefix(layout.INFERENCE_LOG_PREFIX, DAY))) == 44
    later = run(storage, NEXT_RUN + timedelta(hours=2))
    assert later["inference-logs"]["files_deleted"] == 40  # type: ignore[index]
    assert len(storage.list(layout.day_prefix(layout.INFERENCE_LOG_PREFIX, DAY))) == 4
    assert logged_ids(storage, DAY) == ids


def test_a_late_file_is_read_next_to_the_parts_then_compacted_again(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    ids = write_log_files(storage, DAY, files=5, rows=10)
    run(storage, NEXT_RUN)
    # A flush delayed by a storage outage lands after the compaction.
    late = write_log_files(storage, DAY, files=1, rows=7, host="late")
    assert sorted(logged_ids(storage, DAY)) == sorted(ids + late)
    run(storage, NEXT_RUN + timedelta(hours=2))
    files = partitions.day_files(storage, layout.INFERENCE_LOG_PREFIX, DAY)
    assert files.manifest is not None and files.manifest.generation == 2
    assert sorted(logged_ids(storage, DAY)) == sorted(ids + late)
    run(storage, NEXT_RUN + timedelta(hours=4))
    left = storage.list(layout.day_prefix(layout.INFERENCE_LOG_PREFIX, DAY))
    assert left == sorted(
        [*files.manifest.parts, partitions.manifest_key(layout.INFERENCE_LOG_PREFIX, DAY, 2)]
    )
    assert sorted(logged_ids(storage, DAY)) == sorted(ids + late)


def test_an_unreadable_file_is_left_as_it_is(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    ids = write_log_files(storage, DAY, files=3, rows=4)
    broken = f"{layout.day_prefix(layout.INFERENCE_LOG_PREFIX, DAY)}pod-x-broken.parquet"
    storage.write_bytes(broken, b"not parquet")
    summary = run(storage, NEXT_RUN)
    assert summary["inference-logs"]["unreadable_files"] == [broken]  # type: ignore[index]
    run(storage, NEXT_RUN + timedelta(hours=2))
    assert storage.exists(broken)
    read = partitions.read_day(
        storage, layout.INFERENCE_LOG_PREFIX, DAY, lambda data: pd.read_parquet(io.BytesIO(data))
    )
    assert read.unreadable == [broken]
    assert logged_ids(storage, DAY) == ids


def test_readers_see_every_row_once_while_compactions_commit_and_delete(
    tmp_path: Path,
) -> None:
    """The worst case: no grace, the replaced files go right after the commit, while
    readers resolve and read the day in a loop."""
    storage = FileStorage(tmp_path)
    ids = write_log_files(storage, DAY, files=30, rows=20)
    done = threading.Event()
    seen: list[Counter[str]] = []

    def act(index: int) -> None:
        if index == 0:
            try:
                for hours in range(3):
                    now = NEXT_RUN + timedelta(hours=hours)
                    run(storage, now, compaction_grace_hours=0, compaction_rows_per_file=1000)
                    if hours == 0:  # a late file, for a second generation
                        ids.extend(write_log_files(storage, DAY, files=2, rows=3, host="late"))
            finally:
                done.set()
            return
        while not done.is_set():
            seen.append(Counter(logged_ids(storage, DAY)))

    outcomes = run_together(3, act)
    assert all(outcome is None for outcome in outcomes), outcomes
    assert len(seen) >= 2
    for counts in seen:
        assert max(counts.values()) == 1, "a row was read twice"
        # Every read holds the first 600 rows whole; the late ones once or not yet.
        assert set(ids[:600]) <= set(counts) <= set(ids)
    assert Counter(logged_ids(storage, DAY)) == Counter(ids)


class ListingTogether(FileStorage):
    """Two compactions that both list the day before either commits."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.barrier = threading.Barrier(2, timeout=30)

    def list(self, prefix: str = "") -> list[str]:
        keys = super().list(prefix)
        if "_compacted" not in prefix and prefix.endswith(f"date={DAY}/"):
            self.barrier.wait()
        return keys


def test_of_two_racing_compactions_one_commits_and_the_other_leaves_nothing(
    tmp_path: Path,
) -> None:
    storage = ListingTogether(tmp_path)
    ids = write_log_files(FileStorage(tmp_path), DAY, files=10, rows=30)

    def compact(_: int) -> compaction.DayCompaction | None:
        return compaction.compact_day(
            storage, layout.INFERENCE_LOG_PREFIX, DAY, rows_per_file=1000, now=NEXT_RUN
        )

    results = run_together(2, compact)
    committed = [r for r in results if isinstance(r, compaction.DayCompaction) and r.manifest]
    lost = [r for r in results if isinstance(r, compaction.DayCompaction) and not r.manifest]
    assert (len(committed), len(lost)) == (1, 1), results
    plain = FileStorage(tmp_path)
    compacted = plain.list(
        layout.day_prefix(layout.INFERENCE_LOG_PREFIX, DAY) + partitions.COMPACTED_FOLDER
    )
    manifest = committed[0].manifest
    assert manifest is not None
    assert compacted == sorted(
        [*manifest.parts, partitions.manifest_key(layout.INFERENCE_LOG_PREFIX, DAY, 1)]
    )
    assert logged_ids(plain, DAY) == ids


def write_labels(storage: Storage, received: datetime, labels: list[tuple[str, int, bool]]) -> None:
    storage.write_bytes(
        layout.partitioned_key(layout.FEEDBACK_PREFIX, received, "pod"),
        feedback_parquet(
            [
                FeedbackLabel(rid, label, ROW, overwrite, received.timestamp())
                for rid, label, overwrite in labels
            ]
        ),
    )


def test_feedback_rules_decide_the_same_after_compaction(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    noon = datetime.combine(DAY, datetime.min.time(), UTC) + timedelta(hours=12)
    write_labels(storage, noon, [("a", 1, False), ("b", 0, False)])
    write_labels(storage, noon + timedelta(seconds=1), [("a", 0, False), ("b", 1, True)])
    write_labels(storage, noon + timedelta(seconds=2), [("b", 0, True), ("c", 1, False)])
    write_labels(storage, noon + timedelta(seconds=3), [("c", 0, False)])

    def decided() -> tuple[dict[str, int], int, int]:
        rows = load_feedback(storage, today=NEXT_RUN.date())
        table = rows.table
        labels = dict(zip(table[contract.ACCIDENT_ID], table[contract.TARGET], strict=True))
        return labels, rows.labels, rows.ignored_labels

    before = decided()
    assert before == ({"feedback:a": 1, "feedback:b": 0, "feedback:c": 1}, 3, 4)
    summary = run(storage, NEXT_RUN)
    assert summary["feedback"]["days_compacted"] == ["2026-12-05"]  # type: ignore[index]
    assert decided() == before
    run(storage, NEXT_RUN + timedelta(hours=2))
    assert len(storage.list(layout.FEEDBACK_PREFIX)) == 2  # one part, one manifest
    assert decided() == before


def test_retention_deletes_old_days_and_reports_never_the_window_or_labels(
    tmp_path: Path,
) -> None:
    storage = FileStorage(tmp_path)
    now = NEXT_RUN
    for back in (1, 2, 3, 20):
        write_log_files(storage, now.date() - timedelta(days=back), files=2, rows=3)
        write_labels(storage, now - timedelta(days=back), [(f"l{back}", 1, False)])
    for back in (1, 20):
        slug = layout.drift_report_prefix(now - timedelta(days=back))
        storage.write_bytes(f"{slug}summary.json", b"{}")
    storage.write_bytes(LAST_RETRAIN_KEY, json.dumps({"triggered_at": "x"}).encode())
    storage.write_bytes("models/m/v/model.onnx", b"model")
    # A 2-day retention, but the drift window is 72 hours: its days stay.
    summary = run(storage, now, retention_days=2, window_hours=72)
    expired = summary["inference-logs"]["days_expired"]  # type: ignore[index]
    assert expired == [str(now.date() - timedelta(days=20))]
    days = partitions.partition_days(storage, layout.INFERENCE_LOG_PREFIX)
    assert sorted(days) == [now.date() - timedelta(days=b) for b in (3, 2, 1)]
    assert summary["reports_deleted"] == 1
    assert storage.list(layout.DRIFT_REPORT_PREFIX) == sorted(
        [LAST_RETRAIN_KEY, f"{layout.drift_report_prefix(now - timedelta(days=1))}summary.json"]
    )
    assert storage.exists("models/m/v/model.onnx")
    assert load_feedback(storage, today=now.date()).labels == 4  # labels are kept...
    # A backfill's window is kept too, whatever the retention.
    backfill = now - timedelta(days=2)
    run(storage, now, retention_days=1, window_end=backfill, feedback_retention_days=2)
    days = partitions.partition_days(storage, layout.INFERENCE_LOG_PREFIX)
    assert sorted(days) == [now.date() - timedelta(days=b) for b in (3, 2, 1)]
    assert load_feedback(storage, today=now.date()).labels == 2  # ...unless asked


def test_the_cli_compacts_and_prints_what_it_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = FileStorage(tmp_path)
    yesterday = datetime.now(UTC).date() - timedelta(days=2)
    ids = write_log_files(storage, yesterday, files=4, rows=5)
    assert main(["compact", "--registry", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["inference-logs"]["days_compacted"] == [str(yesterday)]
    assert logged_ids(storage, yesterday) == ids


def test_compaction_on_s3(s3_bucket: str) -> None:
    storage = open_storage(s3_bucket)
    ids = write_log_files(storage, DAY, files=6, rows=5)
    run(storage, NEXT_RUN)
    run(storage, NEXT_RUN + timedelta(hours=2))
    files = partitions.day_files(storage, layout.INFERENCE_LOG_PREFIX, DAY)
    assert files.manifest is not None and len(files.listed) == 2
    assert logged_ids(storage, DAY) == ids


def test_training_finds_a_labels_features_in_a_compacted_day(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    ids = write_log_files(storage, DAY, files=20, rows=5)
    labelled = [ids[3], ids[57]]
    received = datetime.combine(DAY, datetime.min.time(), UTC) + timedelta(days=1, hours=3)
    storage.write_bytes(
        layout.partitioned_key(layout.FEEDBACK_PREFIX, received, "pod"),
        feedback_parquet(
            [FeedbackLabel(rid, 1, None, False, received.timestamp()) for rid in labelled]
        ),
    )
    run(storage, NEXT_RUN + timedelta(days=1))
    run(storage, NEXT_RUN + timedelta(days=1, hours=2))
    assert len(partitions.day_files(storage, layout.INFERENCE_LOG_PREFIX, DAY).listed) == 2
    rows = load_feedback(storage, today=received.date())
    assert (rows.labels, rows.unmatched_labels) == (2, 0)
    assert sorted(rows.table[contract.ACCIDENT_ID]) == sorted(f"feedback:{rid}" for rid in labelled)
