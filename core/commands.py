"""What every command line of the stack (``python -m training``, ``python -m
monitoring``) does with its handler's outcome: the result on stdout, and a failure as
one line on stderr with an exit code a Job's retry policy can act on."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from core.errors import TriageError
from core.logs import configure_logging

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_SERVABLE = 3
"""``train``: the model was trained and published but has no faithful ONNX twin, so
the scorer cannot serve it and it was not promoted (the summary says why)."""
EXIT_INTERRUPTED = 130


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def run_handler(handler: Callable[[], int]) -> int:
    """Runs a command's handler; known failures become one line, never a traceback."""
    try:
        return handler()
    except TriageError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_FAILURE
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def run_command(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    *,
    quiet_loggers: Sequence[str] = (),
) -> int:
    """A command line's whole life: parse, log JSON lines at ``--log-level``, run the
    chosen subcommand's ``handler`` through :func:`run_handler`. ``quiet_loggers`` are
    libraries that log every request at INFO (httpx): thousands of lines that say
    nothing new, kept to warnings."""
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    for name in quiet_loggers:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    return run_handler(lambda: int(args.handler(args)))
