"""``python -m service [--host H] [--port P] [--setting-name VALUE ...]``: the scorer
under uvicorn.

Settings come from ``SCORER_*`` variables (see ``service/settings.py``), or from the
flag of the same name, which wins; a bad value is one line on stderr and exit code 2.
The keys (``SCORER_API_KEY``, ``SCORER_REQUEST_ID_KEY``) have no flag: a command line
is visible to every user of the machine. One worker per process: scale with replicas
(the metrics registry is per process, as Prometheus scrapes each pod).
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from core.cli import ArgumentParser, add_settings_arguments, settings_from_args
from core.commands import EXIT_USAGE
from service.settings import ScorerSettings

YOUNG_GENERATION_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (Python's default is
700): a request allocates dozens of objects that refcounting frees, so at the default
the collector runs every few requests and rescans what is in flight."""


def settle_heap() -> None:
    """Called once the app is built. What exists by then (modules, routes, schemas)
    lives as long as the process: frozen, the collector's full passes no longer
    rescan it (they took tens of milliseconds each here, stalling every request in
    flight; docs/scorer.md, "Speed")."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    add_settings_arguments(parser, ScorerSettings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(ScorerSettings, args)
    except ValidationError as error:
        problems = "; ".join(
            f"SCORER_{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        return EXIT_USAGE

    import uvicorn

    from core.errors import TriageError
    from core.logs import configure_logging
    from service.app import create_app
    from service.request_context import RequestIdLogFilter

    try:
        app = create_app(settings)
    except TriageError as error:  # e.g. a malformed storage URI
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    settle_heap()
    configure_logging(settings.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdLogFilter())
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        # None: uvicorn's loggers propagate to the root JSON handler set up above.
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        timeout_graceful_shutdown=max(1, round(settings.graceful_shutdown_seconds)),
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
