"""Time and peak memory of synthesize + build at the default 2021 size.

Target on the 2-core machine: under 30 s and under 1.5 GB peak RSS. Each step runs
in a fresh child process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_step(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB of the child, and its stdout."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, peak_mb, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accidents", type=int, default=56_000)
    args = parser.parse_args()
    python = [sys.executable, "-m", "training", "--log-level", "WARNING"]
    with tempfile.TemporaryDirectory() as folder:
        raw, out = Path(folder, "raw"), Path(folder, "dataset")
        synth_s, synth_mb, _ = run_step(
            [*python, "synthesize", "--out", str(raw), "--accidents", str(args.accidents)]
        )
        build_s, build_mb, stdout = run_step(
            [*python, "build", "--raw", str(raw), "--out", str(out)]
        )
        summary = json.loads(stdout)
    # RUSAGE_CHILDREN reports the largest child so far, so the build's figure is the
    # peak of both steps.
    print(f"accidents              {args.accidents:>10,}")
    print(f"rows (train/test)      {summary['rows']['train']:>10,} / {summary['rows']['test']:,}")
    print(f"synthesize             {synth_s:>10.1f} s   peak RSS {synth_mb:,.0f} MB")
    print(f"build                  {build_s:>10.1f} s   peak RSS (max of both) {build_mb:,.0f} MB")
    print(f"synthesize + build     {synth_s + build_s:>10.1f} s   (target < 30 s, < 1,500 MB)")


if __name__ == "__main__":
    main()
