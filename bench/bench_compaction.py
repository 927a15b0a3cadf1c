"""The drift job on a 24 h window of many small inference-log files, before and after
compaction: the whole ``python -m monitoring drift`` command (compaction step off, so
only the reading differs), against the bench_drift.py registry (50,000 reference
rows).

The window ends at 01:30 UTC the day before yesterday: 22.5 hours of one day, 1.5 of
the next, both finished by the time the benchmark runs, so the compacted window is
two parts (the daily run at 02:30 would also read its own day's first hours raw).
``--files`` files (default 2,000, one flush every 43 s of one replica) of
``--rows-per-file`` rows (default 50: 100,000 rows) spread over the window.

    .venv/bin/python bench/bench_compaction.py [--runs 3]

Three states are timed: raw files only; compacted with the raw files still there
(within the grace period: readers list them and skip them); and after a later run
deleted them. ``python -m monitoring compact`` itself is timed too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitoring.simulate import contract_rows, synthetic_table

from bench.bench_drift import build_registry, run_job
from core import contract, layout
from core.storage import FileStorage
from core.tables import LogChunk, inference_log_parquet
from service.request_ids import RequestIdSigner
from training.model import positive_probability

END = datetime.combine(datetime.now(UTC).date() - timedelta(days=2), datetime.min.time(), UTC)
END += timedelta(hours=1, minutes=30)


def write_window(storage: FileStorage, pipeline: Any, files: int, rows: int) -> int:
    """``files`` inference-log files of ``rows`` rows, flushed evenly over the window."""
    table = synthetic_table(int(rows * files * 1.1) + 50, seed=2)
    features, _ = contract_rows(table)
    features = features[: rows * files]
    encoded = contract.encode_rows(features)
    probability = positive_probability(pipeline, encoded)
    signer = RequestIdSigner("bench", batch_limit=1000)
    start = END - timedelta(hours=24)
    for index in range(files):
        flushed = start + timedelta(seconds=86_400 * (index + 1) / files - 0.001)
        part = slice(index * rows, (index + 1) * rows)
        chunk = LogChunk(
            [signer.issue_at(int(flushed.timestamp())) for _ in range(rows)],
            flushed.timestamp(),
            "bench",
            0.5,
            probability[part],
            encoded[part],
            [row.get("lat") for row in features[part]],
            [row.get("long") for row in features[part]],
        )
        key = layout.partitioned_key(layout.INFERENCE_LOG_PREFIX, flushed, f"scorer-{index % 2}")
        storage.write_bytes(key, inference_log_parquet([chunk]))
    return rows * files


def timed_drift(registry: Path, live: Path, runs: int) -> dict[str, Any]:
    times, cpus, files = [], [], 0
    for _ in range(runs):
        seconds, cpu, summary = run_job(registry, live, END, "--max-reference-rows", "50000")
        times.append(seconds)
        cpus.append(cpu)
        files = summary["files"]["read"]
        rows = summary["rows"]["in_window"]
    return {
        "wall_seconds_median": round(statistics.median(times), 2),
        "cpu_seconds_median": round(statistics.median(cpus), 2),
        "wall_seconds": [round(t, 2) for t in times],
        "files_read": files,
        "rows_in_window": rows,
    }


def compact(live: Path, *extra: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "monitoring", "--log-level", "WARNING", "compact",
         "--registry", str(live), *extra],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rows-per-file", type=int, default=50)
    args = parser.parse_args()
    # Only the reading differs between the timed states.
    os.environ["MONITORING_COMPACTION_ENABLED"] = "false"
    figures: dict[str, Any] = {"files": args.files, "rows_per_file": args.rows_per_file}
    with tempfile.TemporaryDirectory(prefix="bench-compaction-") as folder:
        registry, live = Path(folder, "registry"), Path(folder, "live")
        print(f"preparing: {args.files} files of {args.rows_per_file} rows ...", flush=True)
        pipeline, _ = build_registry(registry)
        storage = FileStorage(live)
        write_window(storage, pipeline, args.files, args.rows_per_file)
        raw_bytes = sum(p.stat().st_size for p in live.rglob("*.parquet"))
        figures["raw"] = timed_drift(registry, live, args.runs)
        print(f"raw:       {figures['raw']}", flush=True)
        seconds, result = compact(live)
        figures["compact_seconds"] = round(seconds, 2)
        figures["compacted"] = result["inference-logs"]["days_compacted"]
        figures["compacted_within_grace"] = timed_drift(registry, live, args.runs)
        print(f"compacted: {figures['compacted_within_grace']}", flush=True)
        seconds, result = compact(live, "--compaction-grace-hours", "0")
        figures["files_deleted"] = result["inference-logs"]["files_deleted"]
        figures["after_deletion"] = timed_drift(registry, live, args.runs)
        print(f"deleted:   {figures['after_deletion']}", flush=True)
        parts = [p for p in live.rglob("*.parquet") if "_compacted" in str(p)]
        compacted_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
        figures["parts"] = len(parts)
        figures["bytes_per_row"] = {
            "raw": round(raw_bytes / (args.files * args.rows_per_file), 1),
            "compacted": round(sum(p.stat().st_size for p in parts) / compacted_rows, 1),
        }
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures, indent=2))
    print(
        f"drift job, 24 h window of {args.files} files x {args.rows_per_file} rows: "
        f"{figures['raw']['wall_seconds_median']} s raw, "
        f"{figures['compacted_within_grace']['wall_seconds_median']} s compacted "
        f"(raw files still listed), {figures['after_deletion']['wall_seconds_median']} s "
        f"after their deletion; compaction {figures['compact_seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
