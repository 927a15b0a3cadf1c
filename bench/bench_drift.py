"""Benchmark of the drift job: 50,000 reference rows x every contract feature against
10,000 live rows, the whole ``python -m monitoring drift`` command as a CronJob runs
it (interpreter start, imports, reading the logs, Evidently, the HTML report).

Targets on the 2-core machine: under 20 s and under 1 GB peak RSS.

    .venv/bin/python bench/bench_drift.py [--runs 3] [--false-alarms 20]

``--false-alarms N`` also measures the false-alarm rate: N windows of same-distribution
traffic (different seeds) at the job's minimum row count, each judged by the job.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import Step, run_step

from core import contract, layout
from core.registry import Registry
from core.storage import Storage, open_storage
from tests.monitoring.support import inference_log_parquet
from tools.simulate import contract_rows, synthetic_table
from training.model import ModelKind, build_pipeline, positive_probability, to_onnx
from training.train import reference_sample

REFERENCE_ROWS = 50_000
LIVE_ROWS = 10_000
TARGET_SECONDS = 20.0
TARGET_RSS_MB = 1024.0
MODEL = "accident-severity"
VERSION = "20260101t000000-benchmrk"
END = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def build_registry(root: Path) -> Any:
    """A registry whose production version has a 50,000-row reference sample."""
    table = synthetic_table(int(REFERENCE_ROWS * 1.25), seed=1)
    features = contract.encode_frame(table)
    labels = table[contract.TARGET].to_numpy(dtype=int)
    pipeline = build_pipeline(ModelKind.HIST_GRADIENT_BOOSTING, seed=0)
    pipeline.fit(features[:15_000], labels[:15_000])
    reference = reference_sample(
        table, positive_probability(pipeline, features), 0.5, REFERENCE_ROWS, seed=0
    )
    model, ref = io.BytesIO(), io.BytesIO()
    joblib.dump(pipeline, model)
    reference.to_parquet(ref, index=False)
    registry = Registry(open_storage(str(root)), MODEL)
    registry.publish(
        VERSION,
        {
            layout.MODEL_JOBLIB: model.getvalue(),
            # Only a servable version (with its ONNX twin) can be promoted.
            layout.MODEL_ONNX: to_onnx(pipeline),
            layout.REFERENCE: ref.getvalue(),
        },
        {"threshold": 0.5, "contract_fingerprint": contract.contract_fingerprint()},
    )
    registry.promote(VERSION, reason="benchmark")
    return pipeline, len(reference)


def write_live(
    storage: Storage, pipeline: Any, rows: int, *, seed: int, end: datetime, drift: str | None
) -> int:
    """``rows`` scored rows in 10 inference-log files over the hour before ``end``."""
    features, _ = contract_rows(synthetic_table(int(rows * 1.1) + 50, seed=seed, drift=drift))
    features = features[:rows]
    probability = positive_probability(pipeline, contract.encode_rows(features))
    stamps = np.linspace((end - timedelta(hours=1)).timestamp(), end.timestamp() - 1, rows)
    records = [
        (f"bench-{i}", float(stamps[i]), VERSION, float(p), int(p >= 0.5), features[i])
        for i, p in enumerate(probability)
    ]
    for part, chunk in enumerate(np.array_split(np.arange(rows), 10)):
        flushed = datetime.fromtimestamp(float(stamps[chunk[-1]]), UTC)
        key = layout.partitioned_key(
            layout.INFERENCE_LOG_PREFIX, flushed + timedelta(microseconds=part), "bench"
        )
        storage.write_bytes(key, inference_log_parquet([records[i] for i in chunk]))
    return rows


def run_job(registry: Path, live: Path, end: datetime, *extra: str) -> tuple[Step, dict]:
    """One drift command in a child process, measured, and its summary."""
    command = [
        sys.executable,
        "-m",
        "monitoring",
        "--log-level",
        "WARNING",
        "drift",
        "--registry",
        str(registry),
        "--inference-log-uri",
        str(live),
        "--report-uri",
        str(live),
        "--until",
        end.isoformat(),
        "--retrain-mode",
        "disabled",
        *extra,
    ]
    step = run_step(command, env={**os.environ, "DO_NOT_TRACK": "1"})
    return step, json.loads(step.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="timed runs (default 3)")
    parser.add_argument(
        "--false-alarms", type=int, default=0, help="same-distribution windows to judge"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-drift-") as folder:
        registry, live = Path(folder, "registry"), Path(folder, "live")
        print(f"preparing: {REFERENCE_ROWS} reference rows, {LIVE_ROWS} live rows ...", flush=True)
        pipeline, reference_rows = build_registry(registry)
        write_live(open_storage(str(live)), pipeline, LIVE_ROWS, seed=2, end=END, drift=None)

        times, cpus, peaks, summaries = [], [], [], []
        for _ in range(args.runs):
            step, summary = run_job(registry, live, END, "--max-reference-rows", "50000")
            times.append(step.seconds)
            cpus.append(step.cpu_seconds)
            peaks.append(step.peak_rss_mb)
            summaries.append(summary)
        peak_mb = max(peaks)
        last = summaries[-1]
        figures: dict[str, Any] = {
            "reference_rows": last["rows"]["reference"],
            "current_rows": last["rows"]["current"],
            "features": len(contract.FEATURE_NAMES),
            "runs": args.runs,
            "wall_seconds": [round(t, 2) for t in times],
            "wall_seconds_median": round(statistics.median(times), 2),
            "cpu_seconds": [round(c, 2) for c in cpus],
            "cpu_seconds_median": round(statistics.median(cpus), 2),
            "job_seconds_median": round(statistics.median(s["seconds"] for s in summaries), 2),
            "peak_rss_mb": round(peak_mb, 1),
            "status": last["status"],
            "targets": {"seconds": TARGET_SECONDS, "rss_mb": TARGET_RSS_MB},
            "cpu_count": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        assert reference_rows == REFERENCE_ROWS

        if args.false_alarms:
            alarms, prediction_alarms, shares = 0, 0, []
            for index in range(args.false_alarms):
                end = END + timedelta(days=2 * (index + 1))
                write_live(
                    open_storage(str(live)), pipeline, 1000, seed=100 + index, end=end, drift=None
                )
                _, summary = run_job(registry, live, end)
                alarms += bool(summary["dataset_drift"])
                prediction_alarms += bool(summary["prediction_drift"])
                shares.append(summary["share_of_drifted_columns"])
            figures["false_alarms"] = {
                "windows": args.false_alarms,
                "rows_per_window": 1000,
                "dataset_drift": alarms,
                "prediction_drift": prediction_alarms,
                "rate": alarms / args.false_alarms,
                "max_share_of_drifted_columns": max(shares),
            }

    print(json.dumps(figures, indent=2))
    within = (
        figures["wall_seconds_median"] < TARGET_SECONDS and figures["peak_rss_mb"] < TARGET_RSS_MB
    )
    print(
        f"drift job, {figures['reference_rows']} x {figures['features']} reference vs "
        f"{figures['current_rows']} live rows: median {figures['wall_seconds_median']} s "
        f"({figures['cpu_seconds_median']} s CPU), "
        f"peak RSS {figures['peak_rss_mb']} MB -> {'within' if within else 'OVER'} target "
        f"({TARGET_SECONDS:.0f} s, {TARGET_RSS_MB:.0f} MB)"
    )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
