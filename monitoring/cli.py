"""``python -m monitoring``: the drift job, the traffic simulator and the local demo.

Every command ends with one JSON result on stdout; logs go to stderr as JSON lines;
a failure is one line on stderr with a non-zero exit code (1: the job failed, 2: bad
settings or arguments).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from core.cli import ArgumentParser, add_settings_arguments, settings_from_args
from core.commands import print_json, run_handler
from core.logs import configure_logging
from monitoring.settings import MonitoringSettings

log = logging.getLogger("monitoring")


def _drift(args: argparse.Namespace) -> int:
    from monitoring.job import run_drift

    print_json(run_drift(settings_from_args(MonitoringSettings, args)))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from monitoring.simulate import contract_rows, rows_from_parquet, simulate, synthetic_table

    if args.rows is not None:
        if args.drift:
            raise ValueError("--drift applies to synthetic rows; leave it out with --rows")
        rows, labels = rows_from_parquet(args.rows)
    else:
        rows, labels = contract_rows(
            synthetic_table(args.accidents, seed=args.seed, drift=args.drift)
        )
    result = simulate(
        args.url,
        rows,
        labels,
        rate=args.rate,
        duration=args.duration,
        concurrency=args.concurrency,
        feedback_share=args.feedback_share,
        feedback_delay=args.feedback_delay,
        seed=args.seed,
        timeout=args.timeout,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    print_json({**result, "drift": args.drift, "rows_available": len(rows)})
    return 0


def _demo(args: argparse.Namespace) -> int:
    from monitoring.demo import DemoOptions, format_report, run_demo

    options = DemoOptions(
        workdir=args.workdir,
        accidents=args.accidents,
        drift=args.drift,
        rate=args.rate,
        seconds=args.seconds,
        pushgateway=not args.no_pushgateway,
    )
    # SIGTERM (a CI timeout, `kill`) would end the process without running the
    # `finally` blocks that stop the scorer and the Pushgateway: treat it as Ctrl-C,
    # which asyncio and subprocess.run also clean up after.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    result = run_demo(options)
    # The demo's result is for people: a short report; the full JSON goes next to it.
    result_file = Path(result["workdir"]) / "demo-result.json"
    result_file.write_text(json.dumps(result, indent=2, default=str, ensure_ascii=False))
    print(format_report(result))
    print(f"  full result        {result_file}")
    return 0


# The flags the drift command had before they were generated from the settings.
DRIFT_ALIASES = {
    "registry_uri": ["--registry"],
    "window_end": ["--until"],
    "training_raw_uri": ["--training-raw"],
}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m monitoring", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    drift = commands.add_parser(
        "drift",
        help="compare the window's traffic with the reference; report, push, maybe retrain",
        description="Options left out are read from MONITORING_* environment variables "
        "(see monitoring/settings.py and docs/drift.md).",
    )
    add_settings_arguments(drift, MonitoringSettings, aliases=DRIFT_ALIASES)
    drift.set_defaults(handler=_drift)

    simulate = commands.add_parser("simulate", help="send scoring traffic to a scorer")
    simulate.add_argument("--url", required=True, help="scorer base URL, http://127.0.0.1:8000")
    simulate.add_argument("--rate", type=float, default=50.0, help="requests per second")
    simulate.add_argument("--duration", type=float, default=10.0, help="seconds (max 3600)")
    simulate.add_argument("--drift", default=None, help="draw drifted synthetic rows of this kind")
    simulate.add_argument(
        "--accidents", type=int, default=5000, help="synthetic accidents to draw rows from"
    )
    simulate.add_argument("--rows", type=Path, default=None, help="held-out rows (parquet)")
    simulate.add_argument("--seed", type=int, default=1000, help="seed of rows and order")
    simulate.add_argument(
        "--feedback-share", type=float, default=0.0, help="share of answers given a label"
    )
    simulate.add_argument(
        "--feedback-delay", type=float, default=0.0, help="seconds before a label is sent"
    )
    simulate.add_argument(
        "--concurrency", type=int, default=4, help="most requests in flight (default 4)"
    )
    simulate.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    simulate.add_argument("--no-progress", action="store_true", help="no progress bar")
    simulate.set_defaults(handler=_simulate)

    demo = commands.add_parser("demo", help="the local end-to-end demo (no network needed)")
    demo.add_argument("--workdir", type=Path, default=Path(".demo"))
    demo.add_argument("--accidents", type=int, default=20_000, help="training accidents")
    demo.add_argument("--drift", default="night-rural", help="kind of the drifted traffic")
    demo.add_argument("--rate", type=float, default=150.0, help="requests per second")
    demo.add_argument(
        "--seconds", type=float, default=8.0, help="per traffic phase (rate x seconds >= 1000)"
    )
    demo.add_argument(
        "--no-pushgateway", action="store_true", help="do not start a local Pushgateway"
    )
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Evidently's telemetry would try the network; the drift job must work without it.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    # httpx logs every request at INFO: thousands of lines that say nothing new.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    return run_handler(lambda: int(args.handler(args)))
