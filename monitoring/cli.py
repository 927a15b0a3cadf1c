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
from datetime import UTC, datetime
from pathlib import Path

from core.commands import print_json, run_handler
from core.logs import configure_logging

log = logging.getLogger("monitoring")


def _drift(args: argparse.Namespace) -> int:
    from monitoring.job import run_drift
    from monitoring.settings import MonitoringSettings

    overrides = {
        "registry_uri": args.registry,
        "model_name": args.model_name,
        "inference_log_uri": args.inference_log_uri,
        "report_uri": args.report_uri,
        "window_hours": args.window_hours,
        "window_end": args.until,
        "min_rows": args.min_rows,
        "max_current_rows": args.max_current_rows,
        "max_reference_rows": args.max_reference_rows,
        "drift_share": args.drift_share,
        "pushgateway_url": args.pushgateway_url,
        "retrain_mode": args.retrain_mode,
        "cooldown_hours": args.cooldown_hours,
        "namespace": args.namespace,
        "training_cronjob": args.training_cronjob,
        "training_raw_uri": args.training_raw,
        "dry_run": True if args.dry_run else None,
    }
    settings = MonitoringSettings(**{k: v for k, v in overrides.items() if v is not None})
    print_json(run_drift(settings))
    return 0


def _compact(args: argparse.Namespace) -> int:
    from monitoring.compaction import run_compaction
    from monitoring.job import storages
    from monitoring.settings import MonitoringSettings

    overrides = {
        "registry_uri": args.registry,
        "inference_log_uri": args.inference_log_uri,
        "report_uri": args.report_uri,
        "compaction_rows_per_file": args.compaction_rows_per_file,
        "compaction_grace_hours": args.compaction_grace_hours,
        "retention_days": args.retention_days,
        "feedback_retention_days": args.feedback_retention_days,
    }
    settings = MonitoringSettings(**{k: v for k, v in overrides.items() if v is not None})
    _, log_storage, report_storage = storages(settings)
    print_json(run_compaction(settings, log_storage, report_storage, now=datetime.now(UTC)))
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


def _datetime(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {value!r}") from error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monitoring", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    drift = commands.add_parser(
        "drift",
        help="compare the window's traffic with the reference; report, push, maybe retrain",
        description="Options left out are read from MONITORING_* environment variables "
        "(see monitoring/settings.py and docs/drift.md).",
    )
    drift.add_argument("--registry", default=None, help="registry URI (file:// or s3://)")
    drift.add_argument("--model-name", default=None)
    drift.add_argument("--inference-log-uri", default=None, help="default: the registry's")
    drift.add_argument("--report-uri", default=None, help="default: the registry's")
    drift.add_argument("--window-hours", type=float, default=None, help="default 24")
    drift.add_argument("--until", type=_datetime, default=None, help="window end (default now)")
    drift.add_argument("--min-rows", type=int, default=None, help="default 500")
    drift.add_argument("--max-current-rows", type=int, default=None)
    drift.add_argument("--max-reference-rows", type=int, default=None)
    drift.add_argument("--drift-share", type=float, default=None)
    drift.add_argument("--pushgateway-url", default=None)
    drift.add_argument("--retrain-mode", default=None, help="local, kubernetes or disabled")
    drift.add_argument("--cooldown-hours", type=float, default=None)
    drift.add_argument("--namespace", default=None)
    drift.add_argument("--training-cronjob", default=None)
    drift.add_argument("--training-raw", default=None, help="--raw of the local retrain")
    drift.add_argument(
        "--dry-run", action="store_true", help="decide and print the retrain, start nothing"
    )
    drift.set_defaults(handler=_drift)

    compact = commands.add_parser(
        "compact",
        help="compact finished days of inference logs and feedback; apply the retention",
        description="What every drift run does first (docs/drift.md, 'Compaction and "
        "retention'). Options left out are read from MONITORING_* environment variables.",
    )
    compact.add_argument("--registry", default=None, help="registry URI (file:// or s3://)")
    compact.add_argument("--inference-log-uri", default=None, help="default: the registry's")
    compact.add_argument("--report-uri", default=None, help="default: the registry's")
    compact.add_argument("--compaction-rows-per-file", type=int, default=None)
    compact.add_argument("--compaction-grace-hours", type=float, default=None)
    compact.add_argument("--retention-days", type=int, default=None, help="default 14")
    compact.add_argument("--feedback-retention-days", type=int, default=None)
    compact.set_defaults(handler=_compact)

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
