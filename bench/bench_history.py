"""Training's cost against the inference-log history it could read: the same training
run (``python -m training train`` on the default synthetic 56,000 accidents) with
0, 7 and 30 days of inference logs in the storage, and the same labels, half of them
sent without features (found in the log by request id).

The history is generated, not served: ``--rows-per-day`` rows a day (default
200,000, about 2.3 requests a second) in ``--files-per-day`` files (default 100), as
the scorer writes them (``core/tables.py``), with ids as the scorer issues them. The
labels are for ids of the last day: the work at hand is the same in every case, only
the history differs. Claim: CPU time and peak RSS stay within 20% of the 0-day
figure (CPU time: the machine is shared, wall time moves with the others' load).
``load_feedback`` alone is timed too, being the part that used to read every file.

    .venv/bin/python bench/bench_history.py [--days 0 7 30] [--labels 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import contract, layout
from core.storage import FileStorage
from core.tables import FeedbackLabel, LogChunk, feedback_parquet, inference_log_parquet
from service.request_ids import RequestIdSigner
from tests.factories import random_features
from training.synthetic import synthesize

TOLERANCE = 0.20
TODAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
LOAD_FEEDBACK = """
import json, resource, sys, time
from core.storage import FileStorage
from training.feedback import load_feedback
started = time.perf_counter()
rows = load_feedback(FileStorage(sys.argv[1]))
print(json.dumps({"seconds": time.perf_counter() - started, "labels": rows.labels,
                  "unmatched": rows.unmatched_labels,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_history(
    storage: FileStorage, days: int, rows_per_day: int, files_per_day: int
) -> list[str]:
    """``days`` days of inference logs ending today; returns the last day's ids."""
    signer = RequestIdSigner("bench", batch_limit=1000)
    rows = rows_per_day // files_per_day
    features = random_features(rows, seed=0)
    latitude = features[:, contract.FEATURE_NAMES.index("lat")].astype(float).tolist()
    longitude = features[:, contract.FEATURE_NAMES.index("long")].astype(float).tolist()
    probabilities = np.random.default_rng(0).random(rows)
    last_day: list[str] = []
    for back in reversed(range(days)):
        start = TODAY.replace(hour=0) - timedelta(days=back)
        for index in range(files_per_day):
            scored = start + timedelta(seconds=86_400 * index / files_per_day)
            ids = [signer.issue_at(int(scored.timestamp())) for _ in range(rows)]
            chunk = LogChunk(
                ids, scored.timestamp(), "v1", 0.5, probabilities, features, latitude, longitude
            )
            key = layout.partitioned_key(layout.INFERENCE_LOG_PREFIX, scored, "bench")
            storage.write_bytes(key, inference_log_parquet([chunk]))
            if back == 0:
                last_day.extend(ids)
    return last_day


def write_labels(storage: FileStorage, ids: list[str], labels: int, days: int) -> None:
    """``labels`` labels, half without features: for the last day's logged ids when
    there is a history, for made-up ones (unmatched) without."""
    rng = np.random.default_rng(1)
    signer = RequestIdSigner("bench", batch_limit=1000)
    chosen = (
        list(rng.choice(ids, labels // 2, replace=False))
        if days
        else [signer.issue_at(int(TODAY.timestamp())) for _ in range(labels // 2)]
    )
    row = contract.example_row()
    received = TODAY.timestamp() + 3600
    without = [
        FeedbackLabel(rid, int(i % 2), None, False, received) for i, rid in enumerate(chosen)
    ]
    with_features = [
        FeedbackLabel(f"admin-{i}", int(i % 2), row | {"hour": i % 24}, False, received)
        for i in range(labels - labels // 2)
    ]
    when = datetime.fromtimestamp(received, UTC)
    storage.write_bytes(
        layout.partitioned_key(layout.FEEDBACK_PREFIX, when, "bench"),
        feedback_parquet(without + with_features),
    )


def run_child(command: list[str]) -> tuple[float, float, float, str]:
    """Wall time, CPU time (user + system: what the run costs whatever else the
    shared machine does), the child's own peak RSS (MB, from wait4) and its stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{command[:5]} failed: {err.read().strip()[-2000:]}")
        cpu = usage.ru_utime + usage.ru_stime
        return seconds, cpu, usage.ru_maxrss / 1024, out.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, nargs="+", default=[0, 7, 30])
    parser.add_argument("--rows-per-day", type=int, default=200_000)
    parser.add_argument("--files-per-day", type=int, default=100)
    parser.add_argument("--labels", type=int, default=2000)
    parser.add_argument("--accidents", type=int, default=56_000)
    args = parser.parse_args()
    figures: dict[str, Any] = {
        "rows_per_day": args.rows_per_day,
        "files_per_day": args.files_per_day,
        "labels": args.labels,
        "labels_without_features": args.labels // 2,
        "accidents": args.accidents,
        "cases": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-history-") as folder:
        raw = Path(folder, "raw")
        synthesize(raw, accidents=args.accidents, seed=42, year=2021)
        for days in args.days:
            root = Path(folder, f"registry-{days}")
            storage = FileStorage(root)
            started = time.perf_counter()
            ids = write_history(storage, days, args.rows_per_day, args.files_per_day)
            write_labels(storage, ids, args.labels, days)
            generated = time.perf_counter() - started
            _, feedback_cpu, feedback_mb, out = run_child(
                [sys.executable, "-c", LOAD_FEEDBACK, str(root)]
            )
            loaded = json.loads(out)
            train_s, train_cpu, train_mb, out = run_child(
                [
                    sys.executable, "-m", "training", "--log-level", "WARNING", "train",
                    "--raw", str(raw), "--registry", str(root),
                ]
            )  # fmt: skip
            summary = json.loads(out)
            case = {
                "log_files": days * args.files_per_day,
                "log_rows": days * args.rows_per_day,
                "generate_seconds": round(generated, 1),
                "load_feedback_seconds": round(loaded["seconds"], 2),
                "load_feedback_process_cpu_seconds": round(feedback_cpu, 2),
                "load_feedback_process_peak_rss_mb": round(feedback_mb),
                "labels_joined": loaded["labels"],
                "labels_unmatched": loaded["unmatched"],
                "train_seconds": round(train_s, 1),
                "train_cpu_seconds": round(train_cpu, 1),
                "train_peak_rss_mb": round(train_mb),
                "feedback_rows_trained_on": summary["feedback_rows"],
            }
            figures["cases"][str(days)] = case
            print(f"{days:>2} days: {json.dumps(case)}", flush=True)
    base = figures["cases"][str(args.days[0])]
    flat = True
    for case in figures["cases"].values():
        # CPU time: wall time on the shared 2-core machine moves with the others' load.
        time_ratio = case["train_cpu_seconds"] / base["train_cpu_seconds"]
        rss_ratio = case["train_peak_rss_mb"] / base["train_peak_rss_mb"]
        case["train_cpu_ratio"] = round(time_ratio, 2)
        case["train_rss_ratio"] = round(rss_ratio, 2)
        flat &= abs(time_ratio - 1) <= TOLERANCE and abs(rss_ratio - 1) <= TOLERANCE
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures, indent=2))
    print(
        "training with "
        + ", ".join(
            f"{d} days of logs: {c['train_cpu_seconds']} s CPU ({c['train_seconds']} s wall), "
            f"{c['train_peak_rss_mb']} MB "
            f"(load_feedback {c['load_feedback_seconds']} s)"
            for d, c in figures["cases"].items()
        )
        + f" -> {'flat' if flat else 'NOT flat'} within {TOLERANCE:.0%} of the first"
    )
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
