"""One uvicorn worker against two, for the scorer's POST /predict on this machine.

Trains a model on synthetic data, then serves it with ``uvicorn --workers 1`` and
``--workers 2`` in turn (the same app factory, the same server options as
``python -m service``: no access log, no server header) and drives each with wrk,
rotating through 2,000 distinct rows, at concurrency 16 and 64. Prints requests per
second, p99 latency and the servers' CPU time per request (all worker processes
summed), medians of ``--runs`` runs, alternating the two set-ups so a noisy
neighbour hurts both alike.

What it answers (docs/scorer.md, "Speed"): when a pod should run two worker
processes rather than the HPA adding a replica. Each worker has its own metrics
registry, so a pod with two workers needs one scrape target per worker; the figure
says what that would buy.

    python bench/bench_workers.py                  # about 3 minutes
    python bench/bench_workers.py --accidents 5000 --duration 5 --runs 1   # quick

``scorer_app`` is the factory the workers import (``uvicorn --factory``).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Run as a script: the checkout's root on the path for `tools` and `bench`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_scorer import request_rows, run_wrk, scorer_env, train
from tools.processes import LOOPBACK as HOST
from tools.processes import free_port, running_process

ROOT = Path(__file__).resolve().parents[1]


def scorer_app() -> Any:
    """The scorer as ``python -m service`` builds it, settings from ``SCORER_*``."""
    from core.logs import configure_logging
    from service.__main__ import settle_heap
    from service.app import create_app
    from service.settings import ScorerSettings

    settings = ScorerSettings()
    app = create_app(settings)
    settle_heap()
    configure_logging(settings.log_level)
    return app


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants (Linux /proc)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        pending.extend(int(child) for child in children)
    return total


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accidents", type=int, default=20_000, help="training accidents")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load run")
    parser.add_argument("--runs", type=int, default=3, help="runs per set-up (medians)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-workers-") as folder:
        workdir = Path(folder)
        print(f"training on {args.accidents} synthetic accidents...", flush=True)
        train(workdir, args.accidents, "hist-gradient-boosting")
        bodies = workdir / "bodies.jsonl"
        bodies.write_text("\n".join(json.dumps(row) for row in request_rows(workdir, 2000)))
        env = scorer_env(workdir)
        results: dict[str, list[dict[str, float]]] = {}
        for _ in range(args.runs):
            for workers in (1, 2):
                port = free_port()
                command = [
                    sys.executable, "-m", "uvicorn", "--factory", "bench.bench_workers:scorer_app",
                    "--host", HOST, "--port", str(port), "--workers", str(workers),
                    "--no-access-log", "--no-server-header", "--log-level", "warning",
                ]  # fmt: skip
                with running_process(
                    command,
                    ready_url=f"http://{HOST}:{port}/ready",
                    env=env,
                    cwd=ROOT,
                    log=workdir / f"workers-{workers}.log",
                    statuses={200},
                    timeout=120,
                    grace=30,
                ) as server:
                    run_wrk(port, "/predict", bodies, 16, 2)  # warm-up, every worker
                    for concurrency in (16, 64):
                        before = process_tree_cpu_seconds(server.pid)
                        figures = run_wrk(port, "/predict", bodies, concurrency, args.duration)
                        used = process_tree_cpu_seconds(server.pid) - before
                        figures["cpu_us"] = used / max(1.0, figures["rps"] * args.duration) * 1e6
                        results.setdefault(f"{workers}w_c{concurrency}", []).append(figures)

    summary = {
        key: {name: statistics.median(run[name] for run in runs) for name in runs[0]}
        for key, runs in results.items()
    }
    print(f"\n{os.cpu_count()} CPUs, wrk on the same machine; medians of {args.runs} runs\n")
    print(f"{'set-up':<22}{'req/s':>9}{'p99 ms':>9}{'CPU us/req':>12}{'errors':>8}")
    for key, f in summary.items():
        workers, concurrency = key.split("_")
        label = f"{workers[0]} worker(s), {concurrency.replace('c', 'c=')}"
        print(
            f"{label:<22}{f['rps']:>9.0f}{f['p99_ms']:>9.2f}{f['cpu_us']:>12.0f}{f['errors']:>8.0f}"
        )
    for concurrency in (16, 64):
        gain = summary[f"2w_c{concurrency}"]["rps"] / summary[f"1w_c{concurrency}"]["rps"]
        print(f"two workers / one, c={concurrency}: throughput x{gain:.2f}")
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
