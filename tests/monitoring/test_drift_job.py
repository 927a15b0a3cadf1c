"""The drift job on inference logs written as the scorer writes them: no alarm on
same-distribution traffic, drift on every drifted kind, the insufficient-data path,
unreadable files, the window, the sampling cap, and the reports it writes."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from core import contract, layout
from core.storage import Storage
from monitoring import drift
from monitoring.job import run_drift
from monitoring.settings import MonitoringSettings
from tests.monitoring.conftest import NOW
from tests.monitoring.support import TrainedModel, live_rows, write_inference_logs

ROWS = 1200
"""Just above the default min_rows (1000): the noisiest window the job judges."""
NULL_SEEDS = (101, 102, 103, 104)

# The features each kind of drift moves (docs/drift.md shows the scores).
SIGNATURES = {
    "night-rural": {"lum", "hour", "agg_", "vma", "catr"},
    "two-wheelers": {"nb_cycles", "nb_motorcycles"},
    "older-victims": {"oldest_age", "youngest_age"},
    "bad-weather": {"atm", "surf", "mois"},
}

Settings = Callable[..., MonitoringSettings]


def test_no_false_alarm_on_same_distribution_traffic(
    trained_model: TrainedModel,
    live_storage: Storage,
    make_settings: Settings,
    record_property: Callable[[str, Any], None],
) -> None:
    alarms, prediction_alarms, shares = 0, 0, []
    for offset, seed in enumerate(NULL_SEEDS):
        # One window per seed, two days apart, so each run reads only its own rows.
        end = NOW + timedelta(days=2 * offset)
        write_inference_logs(live_storage, live_rows(trained_model, ROWS, seed=seed), end=end)
        summary = run_drift(make_settings(window_end=end), now=end)
        assert summary["rows"]["current"] == ROWS
        alarms += summary["dataset_drift"]
        prediction_alarms += summary["prediction_drift"]
        shares.append(summary["share_of_drifted_columns"])
        assert summary["retrain"]["decision"] is False
    rate = alarms / len(NULL_SEEDS)
    record_property("false_alarm_rate", rate)
    print(
        f"\nfalse alarms: dataset {alarms}/{len(NULL_SEEDS)}, prediction "
        f"{prediction_alarms}/{len(NULL_SEEDS)}, drifted shares {shares}"
    )
    assert alarms == 0
    assert prediction_alarms == 0


@pytest.mark.parametrize("kind", sorted(SIGNATURES))
def test_each_drifted_kind_is_detected_and_would_retrain(
    kind: str, trained_model: TrainedModel, live_storage: Storage, make_settings: Settings
) -> None:
    write_inference_logs(live_storage, live_rows(trained_model, ROWS, seed=7, drift=kind), end=NOW)
    summary = run_drift(make_settings(retrain_mode="local", dry_run=True), now=NOW)
    assert summary["status"] == "drift"
    assert SIGNATURES[kind] <= set(summary["drifted_features"]), summary["drifted_features"]
    if kind == "older-victims":
        # Two features moved, which is dataset drift only when noise flags a third;
        # the model's outputs moved with them.
        assert summary["prediction_drift"] is True
        assert summary["prediction"]["drift"]["probability"]["drifted"] is True
    else:
        assert summary["dataset_drift"] is True
        assert summary["share_of_drifted_columns"] >= summary["drift_share_threshold"]
    retrain = summary["retrain"]
    assert retrain["decision"] is True and retrain["triggered"] is False  # dry run
    assert retrain["command"][1:4] == ["-m", "training", "train"]


def test_reports_and_summary_are_written(
    trained_model: TrainedModel, live_storage: Storage, make_settings: Settings
) -> None:
    write_inference_logs(
        live_storage, live_rows(trained_model, ROWS, seed=7, drift="night-rural"), end=NOW
    )
    summary = run_drift(make_settings(), now=NOW)
    prefix = layout.drift_report_prefix(NOW)
    keys = set(live_storage.list(prefix))
    assert keys == {prefix + name for name in ("report.html", "snapshot.json", "summary.json")}
    html = live_storage.read_bytes(prefix + "report.html").decode()
    assert "<html" in html.lower() and "oldest_age" in html
    snapshot = json.loads(live_storage.read_bytes(prefix + "snapshot.json"))
    assert {"metrics", "tests"} <= set(snapshot)
    stored = json.loads(live_storage.read_bytes(prefix + "summary.json"))
    assert stored["status"] == summary["status"] == "drift"
    assert stored["model"] == {"name": "accident-severity", "version": summary["model"]["version"]}
    assert stored["window"]["hours"] == 24
    assert stored["rows"]["current"] == ROWS and stored["rows"]["reference"] > 1000
    for name in contract.FEATURE_NAMES:
        column = stored["columns"][name]
        assert {"kind", "method", "score", "threshold", "drifted"} <= set(column)
    assert stored["columns"]["vma"]["kind"] == "numerical"
    assert stored["columns"]["lum"]["method"] == "Jensen-Shannon distance"
    shares = stored["prediction"]
    assert shares["current"]["prioritaire_share"] > shares["reference"]["prioritaire_share"]
    # Drift, but these settings disable retraining: the reason says both.
    assert stored["retrain"]["decision"] is False and stored["retrain"]["triggered"] is False
    assert stored["retrain"]["reason"].startswith("drift (dataset drift yes")
    assert stored["retrain"]["reason"].endswith("but retraining is disabled")
    assert stored["report"]["html"].endswith(prefix + "report.html")
    assert stored["tests"]["failed"] >= 5


def test_results_are_read_by_metric_name_not_position(
    trained_model: TrainedModel, live_storage: Storage
) -> None:
    rows = live_rows(trained_model, 1100, seed=9, drift="bad-weather")
    current = pd.DataFrame(rows.features).assign(
        probability=rows.probability, prediction=(rows.probability >= 0.5).astype(int)
    )
    reference = current.sample(frac=1.0, random_state=0)
    # An optional feature the clients stopped sending: not comparable, counted drifted.
    current["any_unrestrained"] = None
    run, expected = drift.run_report(
        reference, current, drift_share=0.1, column_threshold=None, model_version="v"
    )
    snapshot = run.dict()
    assert drift.extract_results(snapshot, 0.1, empty=["any_unrestrained"]) == expected
    shuffled = {"metrics": list(snapshot["metrics"]), "tests": list(snapshot["tests"])}
    random.Random(3).shuffle(shuffled["metrics"])
    random.Random(4).shuffle(shuffled["tests"])
    assert drift.extract_results(shuffled, 0.1, empty=["any_unrestrained"]) == expected
    assert expected.empty_features == ("any_unrestrained",)
    assert (
        expected.columns["any_unrestrained"].drifted
        and expected.columns["any_unrestrained"].to_dict()["score"] is None
    )
    assert expected.drifted_columns == 1 and expected.dataset_drift is False
    assert not any(c.drifted for name, c in expected.columns.items() if name != "any_unrestrained")


def test_insufficient_data_judges_nothing(
    trained_model: TrainedModel, live_storage: Storage, make_settings: Settings
) -> None:
    write_inference_logs(live_storage, live_rows(trained_model, 40, seed=3), end=NOW)
    summary = run_drift(make_settings(retrain_mode="local"), now=NOW)
    assert summary["status"] == "insufficient-data"
    assert summary["rows"]["current"] == 40
    assert summary["dataset_drift"] is None
    assert "insufficient data: 40 rows in the window, 1000 needed" in summary["message"]
    assert summary["retrain"]["decision"] is False and summary["retrain"]["triggered"] is False
    prefix = layout.drift_report_prefix(NOW)
    assert live_storage.list(prefix) == [prefix + "summary.json"]


def test_unreadable_files_are_skipped_counted_and_named(
    trained_model: TrainedModel, live_storage: Storage
) -> None:
    write_inference_logs(live_storage, live_rows(trained_model, 300, seed=3), end=NOW, files=2)
    day = f"{layout.INFERENCE_LOG_PREFIX}date={NOW:%Y-%m-%d}/"
    live_storage.write_bytes(day + "broken-1.parquet", b"not parquet at all")
    no_timestamp = pd.DataFrame({"probability": [0.5], "prediction": [1]})
    live_storage.write_bytes(day + "broken-2.parquet", no_timestamp.to_parquet())
    live_storage.write_bytes(day + "notes.txt", b"ignored: not a parquet key")
    window = drift.Window.ending(NOW, 24)
    live = drift.load_window(live_storage, window, max_rows=10_000, seed=0)
    assert len(live.frame) == 300
    assert live.files == 4
    assert live.unreadable_files == [day + "broken-1.parquet", day + "broken-2.parquet"]


def test_only_rows_inside_the_window_are_read(
    trained_model: TrainedModel, live_storage: Storage
) -> None:
    rows = live_rows(trained_model, 400, seed=3)
    write_inference_logs(live_storage, rows, end=NOW, span=timedelta(hours=1))
    # 26 to 27 hours before NOW: the partition of the day before, outside a 24 h window.
    write_inference_logs(live_storage, rows, end=NOW - timedelta(hours=26), host="old")
    # After the window's end.
    write_inference_logs(live_storage, rows, end=NOW + timedelta(hours=2), host="late")
    live = drift.load_window(live_storage, drift.Window.ending(NOW, 24), max_rows=10_000, seed=0)
    assert len(live.frame) == 400 and live.rows_in_window == 400
    stamps = live.frame[layout.TIMESTAMP]
    assert stamps.min() >= NOW - timedelta(hours=24) and stamps.max() < NOW
    wider = drift.load_window(live_storage, drift.Window.ending(NOW, 30), max_rows=10_000, seed=0)
    assert len(wider.frame) == 800


def test_the_sample_is_capped_uniform_and_reproducible(
    trained_model: TrainedModel, live_storage: Storage
) -> None:
    rows = live_rows(trained_model, 900, seed=3)
    write_inference_logs(live_storage, rows, end=NOW, files=9)
    window = drift.Window.ending(NOW, 24)
    first = drift.load_window(live_storage, window, max_rows=300, seed=5)
    again = drift.load_window(live_storage, window, max_rows=300, seed=5)
    assert len(first.frame) == 300 and first.rows_in_window == 900
    assert first.frame[layout.TIMESTAMP].tolist() == again.frame[layout.TIMESTAMP].tolist()
    # Uniform over the files, not the first 300 rows: every third of the hour is there.
    minutes = (first.frame[layout.TIMESTAMP] - (NOW - timedelta(hours=1))).dt.total_seconds() / 60
    assert all(((minutes >= low) & (minutes < low + 20)).sum() > 50 for low in (0, 20, 40))


def test_codes_compare_the_same_whatever_their_type() -> None:
    frame = pd.DataFrame(
        {
            **{name: [1.0, None] for name in contract.NUMERICAL_FEATURES},
            **{name: [7.0, None] for name in contract.CATEGORICAL_FEATURES},
            "probability": [0.2, 0.9],
            "prediction": [0, 1],
        }
    )
    frame["dep"] = ["2A", None]
    as_text = frame.copy()
    as_text["lum"] = ["7", None]
    as_int = frame.copy()
    as_int["lum"] = pd.array([7, None], dtype="Int64")
    for variant in (as_text, as_int):
        assert drift.prepare(variant)["lum"].tolist() == ["7", None]
    prepared = drift.prepare(frame)
    assert prepared["dep"].tolist() == ["2A", None]
    assert prepared["prediction"].tolist() == ["0", "1"]
    assert prepared["vma"].dtype == "float64"


def test_settings_refuse_a_cap_below_the_minimum() -> None:
    with pytest.raises(ValueError, match="max_current_rows"):
        values: dict[str, Any] = {"min_rows": 2000, "max_current_rows": 1000}
        MonitoringSettings(**values)


def test_a_drift_run_compacts_finished_days_first_and_judges_the_same(
    trained_model: TrainedModel, live_storage: Storage, make_settings: Settings
) -> None:
    rows = live_rows(trained_model, ROWS, seed=5)
    # 20 hours of traffic ending at NOW: most of it on the day before, a finished day.
    write_inference_logs(live_storage, rows, end=NOW, span=timedelta(hours=20), files=40)
    raw = run_drift(make_settings(compaction_enabled=False), now=NOW)
    assert raw["compaction"] is None
    compacted = run_drift(make_settings(), now=NOW)
    finished = (NOW - timedelta(days=1)).date().isoformat()
    assert compacted["compaction"]["inference-logs"]["days_compacted"] == [finished]
    assert compacted["files"]["read"] < raw["files"]["read"]
    assert compacted["rows"] == raw["rows"]
    assert compacted["columns"] == raw["columns"]
