"""``python -m tools``: the local demo, the traffic simulator and the dashboard renderer.

Run from a checkout (the repository root is on the path). Logs go to stderr as JSON
lines; a failure is one line on stderr with a non-zero exit code (1: the command
failed, 2: bad arguments), as for every command of the project.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from core.commands import print_json, run_command
from tools.errors import ToolError

ROOT = Path(__file__).resolve().parents[1]


def _simulate(args: argparse.Namespace) -> int:
    from tools.simulate import contract_rows, rows_from_parquet, simulate, synthetic_table

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
    from tools.demo import DemoOptions, format_report, run_demo

    options = DemoOptions(
        workdir=args.workdir,
        accidents=args.accidents,
        drift=args.drift,
        rate=args.rate,
        seconds=args.seconds,
        pushgateway=not args.no_pushgateway,
        evidently_ui=not args.no_evidently_ui,
    )
    # SIGTERM (a CI timeout, `kill`) would end the process without running the
    # `finally` blocks that stop the scorer and the Pushgateway: treat it as Ctrl-C,
    # which asyncio and subprocess.run also clean up after.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # The Evidently UI outlives the demo's other servers: it is up while the report
    # that prints its URL is read, and stops when this block ends.
    with contextlib.ExitStack() as keep:
        result = run_demo(options, keep=keep)
        # The demo's result is for people: a short report; the full JSON goes next to it.
        result_file = Path(result["workdir"]) / "demo-result.json"
        result_file.write_text(json.dumps(result, indent=2, default=str, ensure_ascii=False))
        print(format_report(result))
        print(f"  full result        {result_file}")
        if options.evidently_ui:
            if args.keep_ui:
                print("  The Evidently UI stays up until Ctrl-C.", flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
            else:
                print("  The Evidently UI stops with the demo: --keep-ui keeps it up.")
    return 0


def _render_dashboards(args: argparse.Namespace) -> int:
    try:
        from tools.render_dashboards import render_all
    except ModuleNotFoundError as error:
        if error.name is None or not error.name.startswith("matplotlib"):
            raise
        raise ToolError(
            "render-dashboards needs matplotlib, which no role depends on: pip install matplotlib"
        ) from error
    end = args.end or time.time()
    start = args.start or end - args.minutes * 60
    for image in render_all(
        args.prometheus, start=start, end=end, out=args.out, dashboards=args.dashboards
    ):
        print(image)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

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
    demo.add_argument(
        "--no-evidently-ui", action="store_true", help="do not start a local Evidently UI"
    )
    demo.add_argument(
        "--keep-ui",
        action="store_true",
        help="keep the Evidently UI up after the demo, until Ctrl-C",
    )
    demo.set_defaults(handler=_demo)

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

    render = commands.add_parser(
        "render-dashboards",
        help="draw the Grafana dashboards to PNG from a live Prometheus (needs matplotlib)",
    )
    render.add_argument("--prometheus", required=True, help="Prometheus base URL")
    render.add_argument("--minutes", type=float, default=5.0, help="time range ending now")
    render.add_argument(
        "--start", type=float, default=None, help="start (unix time; overrides --minutes)"
    )
    render.add_argument("--end", type=float, default=None, help="end of the range (unix time)")
    render.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboards")
    render.add_argument("--dashboards", type=Path, default=ROOT / "grafana" / "dashboards")
    render.set_defaults(handler=_render_dashboards)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Evidently's telemetry (the demo's drift runs) would try the network.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    return run_command(build_parser(), argv, quiet_loggers=("httpx",))
