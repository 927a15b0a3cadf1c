"""``python -m monitoring``: the drift job. (The traffic simulator and the local demo
are development tools: ``python -m tools``.)

Every command ends with one JSON result on stdout; logs go to stderr as JSON lines;
a failure is one line on stderr with a non-zero exit code (1: the job failed, 2: bad
settings or arguments).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime

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


def _datetime(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {value!r}") from error


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
