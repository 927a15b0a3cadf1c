"""Throughput and latency of the scorer under uvicorn, against the framework floor.

Trains a model on synthetic data (56,000 accidents by default), starts
``python -m service`` and a floor app (FastAPI, the same 26-feature pydantic body,
returning a constant) on 127.0.0.1 with one worker each, and drives both from a
separate process with the same load, rotating through 2,000 different rows:

* ``POST /predict`` at concurrency 1 and 16: requests per second, p50/p95/p99;
* ``POST /predict/batch`` with 1,000 rows, one request at a time: p50/p95/p99.

The load generator is wrk when installed (``apt-get install wrk``), else a raw-socket
asyncio client in a subprocess (slower: its own CPU use lowers both figures).

Targets on the 2-core machine (issue 16): /predict at least 0.8 of the floor's throughput at
concurrency 16 with p99 under 10 ms; a 1,000-row batch under 30 ms. The figures move
from run to run on shared machines; the ratio is the stable one.

    python bench/bench_scorer.py                  # full run (about 3 minutes)
    python bench/bench_scorer.py --accidents 5000 --duration 5 --runs 1   # quick
"""

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Run as a script: the checkout's root on the path for `tools` (no package ships it).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.processes import LOOPBACK as HOST
from tools.processes import free_port, running_process

ROOT = Path(__file__).resolve().parents[1]

WRK_SCRIPT = r"""
local requests = {}
local index = 0
init = function(args)
  local path = args[1]
  local bodies = io.open(args[2], "r")
  for line in bodies:lines() do
    local headers = {["Content-Type"] = "application/json"}
    requests[#requests + 1] = wrk.format("POST", path, headers, line)
  end
  bodies:close()
  index = math.random(#requests)
end
request = function()
  index = index % #requests + 1
  return requests[index]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT %d %d %d %d %d %d %d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


# --- the floor app ------------------------------------------------------------------


def floor_app() -> Any:
    """FastAPI with the scorer's request model, returning a constant: what any
    endpoint taking this body costs before it does anything."""
    from fastapi import FastAPI

    from service.schemas import AccidentFeatures

    app = FastAPI()
    answer = {
        "prediction": 0,
        "label": "non-prioritaire",
        "probability": 0.1,
        "confidence": "high",
        "model_version": "floor",
        "request_id": "floor",
    }

    @app.post("/predict")
    async def predict(features: AccidentFeatures) -> dict[str, Any]:  # type: ignore[valid-type]
        return answer

    return app


def serve_floor(port: int) -> None:
    import uvicorn

    uvicorn.run(
        floor_app(),
        host=HOST,
        port=port,
        access_log=False,
        log_level="warning",
        server_header=False,
    )


# --- processes ----------------------------------------------------------------------


def running(
    command: Sequence[str], port: int, ready_path: str, env: dict[str, str], log: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """A server of the benchmark, ready when ``ready_path`` answers 200."""
    return running_process(
        command,
        ready_url=f"http://{HOST}:{port}{ready_path}",
        env=env,
        cwd=ROOT,
        log=log,
        statuses={200},
        timeout=120,
        grace=30,
    )


# --- data ---------------------------------------------------------------------------


def train(workdir: Path, accidents: int, model_kind: str) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable, "-m", "training", "--log-level", "WARNING", "train",
            "--raw", f"synthetic://?accidents={accidents}&seed=42",
            "--registry", str(workdir / "registry"),
            "--model-kind", model_kind, "--promote", "force",
        ],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def scorer_env(workdir: Path) -> dict[str, str]:
    """The scorer's environment in the benchmarks: the model trained under ``workdir``,
    the inference log on (under it), quiet logs, no retraining."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCORER_REGISTRY_URI": str(workdir / "registry"),
        "SCORER_INFERENCE_LOG_URI": str(workdir / "logs"),
        "SCORER_LOG_LEVEL": "WARNING",
        "SCORER_RETRAIN_MODE": "disabled",
    }


def request_rows(workdir: Path, count: int) -> list[dict[str, Any]]:
    """Distinct, contract-valid rows from synthetic accidents other than the training
    ones, as a client would send them (nulls for missing values)."""
    from core import contract
    from service.schemas import AccidentFeatures
    from training.baac import read_raw
    from training.dataset import build_table
    from training.synthetic import synthesize

    raw = workdir / "request-raw"
    synthesize(raw, accidents=max(count * 2, 1000), seed=7, year=2021)
    table = build_table(read_raw(raw))
    rows: list[dict[str, Any]] = []
    for record in table[list(contract.FEATURE_NAMES)].to_dict("records"):
        row: dict[str, Any] = {}
        for feature in contract.FEATURES:
            value = record[feature.name]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                row[feature.name] = None
            elif feature.is_string_coded:
                row[feature.name] = str(value)
            elif feature.integer:
                row[feature.name] = int(value)
            else:
                row[feature.name] = float(value)
        try:
            AccidentFeatures.model_validate(row)
        except ValueError:
            continue
        rows.append(row)
        if len(rows) == count:
            break
    return rows


# --- load ---------------------------------------------------------------------------


def run_wrk(
    port: int, path: str, bodies: Path, concurrency: int, seconds: float
) -> dict[str, float]:
    script = bodies.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    result = subprocess.run(
        [
            "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
            "-s", str(script), f"http://{HOST}:{port}", "--", path, str(bodies),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    requests, duration_us, errors, non2xx, p50, p95, p99 = map(int, line.split()[1:])
    return {
        "rps": requests / (duration_us / 1e6),
        "p50_ms": p50 / 1000,
        "p95_ms": p95 / 1000,
        "p99_ms": p99 / 1000,
        "errors": errors + non2xx,
    }


async def _socket_load(
    port: int, path: str, bodies: list[bytes], concurrency: int, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(HOST, port)
        i = offset
        while time.perf_counter() < stop_at:
            body = bodies[i % len(bodies)]
            i += 1
            request = (
                f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (header := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = header.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if b" 200 " not in status_line:
                errors += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i * 97) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": quantiles[49] * 1000,
        "p95_ms": quantiles[94] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "errors": errors,
    }


def run_socket_load(
    port: int, path: str, bodies: Path, concurrency: int, seconds: float
) -> dict[str, float]:
    """The fallback generator, in its own process like wrk."""
    result = subprocess.run(
        [
            sys.executable, __file__, "load", "--port", str(port), "--path", path,
            "--bodies", str(bodies), "--concurrency", str(concurrency),
            "--duration", str(seconds),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


def batch_latency(port: int, batches: list[bytes], requests: int) -> dict[str, float]:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    timings = []
    for i in range(requests + 3):
        started = time.perf_counter()
        connection.request(
            "POST", "/predict/batch", body=batches[i % len(batches)], headers=headers
        )
        response = connection.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise SystemExit(f"batch request failed: {response.status} {payload[:200]!r}")
        if i >= 3:  # warm-up
            timings.append(elapsed)
    connection.close()
    quantiles = statistics.quantiles(timings, n=100)
    return {
        "p50_ms": quantiles[49] * 1000,
        "p95_ms": quantiles[94] * 1000,
        "p99_ms": quantiles[98] * 1000,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(
    load: Any, pid: int, port: int, bodies: Path, concurrency: int, seconds: float
) -> dict[str, float]:
    """The load's figures plus the server's CPU time per request: on a shared machine
    throughput moves with the neighbours' load, CPU per request much less."""
    before = cpu_seconds(pid)
    figures: dict[str, float] = load(port, "/predict", bodies, concurrency, seconds)
    used = cpu_seconds(pid) - before
    figures["cpu_us"] = used / max(1.0, figures["rps"] * seconds) * 1e6
    return figures


# --- report ---------------------------------------------------------------------------


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accidents", type=int, default=56_000, help="training accidents")
    parser.add_argument("--model-kind", default="hist-gradient-boosting")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (medians)")
    parser.add_argument("--batch-requests", type=int, default=60)
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    load = run_wrk if generator == "wrk" else run_socket_load

    with tempfile.TemporaryDirectory(prefix="bench-scorer-") as folder:
        workdir = Path(folder)
        print(
            f"training on {args.accidents} synthetic accidents ({args.model_kind})...", flush=True
        )
        summary = train(workdir, args.accidents, args.model_kind)
        rows = request_rows(workdir, 2000)
        bodies = workdir / "bodies.jsonl"
        bodies.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
        batches = [
            json.dumps({"rows": rows[start : start + 1000]}).encode() for start in (0, 500, 1000)
        ]

        env = scorer_env(workdir)
        scorer_port, floor_port = free_port(), free_port()
        figures: dict[str, Any] = {
            "model_version": summary.get("version"),
            "model_kind": args.model_kind,
            "generator": generator,
            "cpus": os.cpu_count(),
        }
        with (
            running(
                [sys.executable, "-m", "service", "--host", HOST, "--port", str(scorer_port)],
                scorer_port, "/ready", env, workdir / "scorer.log",
            ) as scorer,
            running(
                [sys.executable, __file__, "serve-floor", "--port", str(floor_port)],
                floor_port, "/docs", env, workdir / "floor.log",
            ) as floor,
        ):  # fmt: skip
            servers = (("floor", floor.pid, floor_port), ("scorer", scorer.pid, scorer_port))
            for concurrency in (1, 16):
                results: dict[str, list[dict[str, float]]] = {"floor": [], "scorer": []}
                for _ in range(args.runs):
                    # Interleaved, so a noisy neighbour hurts both sides alike.
                    for name, pid, port in servers:
                        results[name].append(
                            measured(load, pid, port, bodies, concurrency, args.duration)
                        )
                for name, runs in results.items():
                    figures[f"{name}_c{concurrency}"] = median_of(runs)
            figures["batch_1000"] = batch_latency(scorer_port, batches, args.batch_requests)

    report(figures)
    if args.json:
        print(json.dumps(figures, indent=2))
    missed = verdicts(figures)
    return 1 if args.strict and missed else 0


def report(figures: dict[str, Any]) -> None:
    print(
        f"\nmodel {figures['model_version']} ({figures['model_kind']}), "
        f"load from {figures['generator']}, {figures['cpus']} CPUs, one uvicorn worker each\n"
    )
    print(
        f"{'endpoint':<28}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'CPU us/req':>12}{'errors':>8}"
    )
    for concurrency in (1, 16):
        for name, label in (("floor", "floor (constant)"), ("scorer", "/predict")):
            f = figures[f"{name}_c{concurrency}"]
            print(
                f"{label + f', c={concurrency}':<28}{f['rps']:>9.0f}{f['p50_ms']:>9.2f}"
                f"{f['p95_ms']:>9.2f}{f['p99_ms']:>9.2f}{f['cpu_us']:>12.0f}{f['errors']:>8.0f}"
            )
    for concurrency in (1, 16):
        scorer, floor = figures[f"scorer_c{concurrency}"], figures[f"floor_c{concurrency}"]
        ratio = scorer["rps"] / floor["rps"]
        figures[f"ratio_c{concurrency}"] = ratio
        figures[f"cpu_ratio_c{concurrency}"] = floor["cpu_us"] / scorer["cpu_us"]
        print(
            f"/predict / floor, c={concurrency}: throughput {ratio:.2f}, "
            f"CPU per request (floor/scorer) {figures[f'cpu_ratio_c{concurrency}']:.2f}"
        )
    b = figures["batch_1000"]
    print(
        f"/predict/batch, 1,000 rows, c=1: p50 {b['p50_ms']:.1f} ms, p95 {b['p95_ms']:.1f} ms, "
        f"p99 {b['p99_ms']:.1f} ms"
    )


def verdicts(figures: dict[str, Any]) -> list[str]:
    checks = [
        ("throughput >= 0.8 of the floor at c=16", figures["ratio_c16"] >= 0.8),
        ("/predict p99 < 10 ms at c=16", figures["scorer_c16"]["p99_ms"] < 10),
        ("1,000-row batch p50 < 30 ms", figures["batch_1000"]["p50_ms"] < 30),
        (
            "no failed request",
            figures["scorer_c1"]["errors"] + figures["scorer_c16"]["errors"] == 0,
        ),
    ]
    print()
    for name, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name}")
    return [name for name, ok in checks if not ok]


def cli() -> int:
    # Two internal roles of this file, run in their own processes by main().
    if len(sys.argv) > 1 and sys.argv[1] == "serve-floor":
        parser = argparse.ArgumentParser()
        parser.add_argument("--port", type=int, required=True)
        serve_floor(parser.parse_args(sys.argv[2:]).port)
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        parser = argparse.ArgumentParser()
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--path", required=True)
        parser.add_argument("--bodies", type=Path, required=True)
        parser.add_argument("--concurrency", type=int, required=True)
        parser.add_argument("--duration", type=float, required=True)
        a = parser.parse_args(sys.argv[2:])
        bodies = [line.encode() for line in a.bodies.read_text().splitlines() if line]
        figures = asyncio.run(_socket_load(a.port, a.path, bodies, a.concurrency, a.duration))
        print(json.dumps(figures))
        return 0
    return main()


if __name__ == "__main__":
    sys.exit(cli())
