"""The realised-quality step's cost: ``monitoring.quality.measure_quality`` over a
7-day window of ``--rows-per-day`` inference-log rows a day (one file a day, the size
of a compacted day) with ``--label-share`` of them labelled, timed in a fresh process
(wall, CPU, peak RSS) so the data generation does not count.

    .venv/bin/python bench/bench_quality.py [--rows-per-day 200000] [--label-share 0.1]

``--with-drift``: the same window with real features under bench_drift.py's registry
(50,000 reference rows), and the whole ``python -m monitoring drift`` command timed
twice, quality step on and off: what the step adds to the CronJob's peak memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import contract, layout
from core.registry import Registry
from core.storage import FileStorage
from core.tables import FeedbackLabel, LogChunk, feedback_parquet, inference_log_parquet
from service.request_ids import RequestIdSigner

END = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
VERSION = "20261101t000000-benchben"
DAYS = 7

CHILD = """
import json, resource, sys, time
from datetime import datetime
from core.registry import Registry
from core.storage import open_storage
from monitoring.quality import measure_quality
from monitoring.settings import MonitoringSettings
root, end = sys.argv[1], datetime.fromisoformat(sys.argv[2])
settings = MonitoringSettings(registry_uri=root, window_end=end, quality_window_hours=168)
storage = open_storage(root)
started, cpu = time.perf_counter(), time.process_time()
run = measure_quality(settings, registry=Registry(storage, "accident-severity"),
                      log_storage=storage, production_version=None, now=end)
print(json.dumps({"seconds": round(time.perf_counter() - started, 2),
                  "cpu_seconds": round(time.process_time() - cpu, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "labels": run.summary["labels"]}))
"""


def write(
    root: Path,
    rows_per_day: int,
    label_share: float,
    *,
    version: str = VERSION,
    features: np.ndarray | None = None,
) -> None:
    """The window's logs and labels; ``features``: the rows' encoded features (zeros
    when only the quality step reads them), repeated to fill a day."""
    storage = FileStorage(root)
    if features is None:
        Registry(storage, "accident-severity").publish(
            VERSION,
            {layout.REFERENCE: b"unused"},
            {"threshold": 0.5, "metrics": {"accuracy": 0.75, "f1": 0.57, "roc_auc": 0.79}},
        )
        features = np.zeros((rows_per_day, len(contract.FEATURE_NAMES)), dtype=np.float32)
    features = np.resize(features, (rows_per_day, features.shape[1]))
    signer = RequestIdSigner("bench", batch_limit=1000)
    rng = np.random.default_rng(0)
    for back in range(DAYS):
        when = END - timedelta(days=back, hours=1)
        ids = [signer.issue_at(int(when.timestamp())) for _ in range(rows_per_day)]
        probability = rng.random(rows_per_day)
        chunk = LogChunk(
            ids, when.timestamp(), version, 0.5, probability, features,
            [None] * rows_per_day, [None] * rows_per_day,
        )  # fmt: skip
        key = layout.partitioned_key(layout.INFERENCE_LOG_PREFIX, when, "scorer-0")
        storage.write_bytes(key, inference_log_parquet([chunk]))
        labelled = rng.random(rows_per_day) < label_share
        labels = [
            FeedbackLabel(rid, int(rng.random() < p), None, False, when.timestamp() + 60)
            for rid, p, chosen in zip(ids, probability, labelled, strict=True)
            if chosen
        ]
        received = when + timedelta(minutes=1)
        key = layout.partitioned_key(layout.FEEDBACK_PREFIX, received, "scorer-0")
        storage.write_bytes(key, feedback_parquet(labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows-per-day", type=int, default=200_000)
    parser.add_argument("--label-share", type=float, default=0.1)
    parser.add_argument("--with-drift", action="store_true")
    args = parser.parse_args()
    if args.with_drift:
        with_drift(args.rows_per_day, args.label_share)
        return
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as folder:
        write(Path(folder), args.rows_per_day, args.label_share)
        result = subprocess.run(
            [sys.executable, "-c", CHILD, folder, END.isoformat()],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
            env={"DO_NOT_TRACK": "1", "PATH": "/usr/bin:/bin"},
        )
    print(json.dumps({"rows": args.rows_per_day * DAYS, **json.loads(result.stdout)}, indent=2))


def with_drift(rows_per_day: int, label_share: float) -> None:
    from bench.bench_drift import VERSION as DRIFT_VERSION
    from bench.bench_drift import build_registry, run_job
    from tools.simulate import contract_rows, synthetic_table

    with tempfile.TemporaryDirectory(prefix="bench-quality-drift-") as folder:
        registry, live = Path(folder, "registry"), Path(folder, "live")
        build_registry(registry)
        rows, _ = contract_rows(synthetic_table(22_000, seed=2))
        write(live, rows_per_day, label_share, version=DRIFT_VERSION,
              features=contract.encode_rows(rows[:20_000]))  # fmt: skip
        result: dict[str, object] = {"rows": rows_per_day * DAYS}
        for enabled in ("true", "false"):
            step, summary = run_job(
                registry, live, END, "--quality-window-hours", "168",
                "--quality-enabled" if enabled == "true" else "--no-quality-enabled",
            )  # fmt: skip
            result[f"quality_{'on' if enabled == 'true' else 'off'}"] = {
                "seconds": round(step.seconds, 2),
                "cpu_seconds": round(step.cpu_seconds, 2),
                "peak_rss_mb": round(step.peak_rss_mb),
                "status": summary["status"],
                "labels": (summary.get("quality") or {}).get("labels"),
            }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
