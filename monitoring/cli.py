"""``python -m monitoring``: the drift job, and the compaction and retention it runs first.

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

from core.cli import ArgumentParser, add_settings_arguments, settings_from_args
from core.commands import print_json, run_command
from monitoring.settings import MonitoringSettings

log = logging.getLogger("monitoring")


def _drift(args: argparse.Namespace) -> int:
    from monitoring.job import run_drift

    print_json(run_drift(settings_from_args(MonitoringSettings, args)))
    return 0


def _compact(args: argparse.Namespace) -> int:
    from monitoring.compaction import run_compaction
    from monitoring.job import storages

    settings = settings_from_args(MonitoringSettings, args)
    _, log_storage, report_storage = storages(settings)
    print_json(run_compaction(settings, log_storage, report_storage, now=datetime.now(UTC)))
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

    compact = commands.add_parser(
        "compact",
        help="compact finished days of inference logs and feedback; apply the retention",
        description="What every drift run does first (docs/drift.md, 'Compaction and "
        "retention'). Options left out are read from MONITORING_* environment variables.",
    )
    add_settings_arguments(compact, MonitoringSettings, aliases=DRIFT_ALIASES)
    compact.set_defaults(handler=_compact)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Evidently's telemetry would try the network; the drift job must work without it.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    return run_command(build_parser(), argv, quiet_loggers=("httpx",))
