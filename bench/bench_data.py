"""Time and peak memory of synthesize + build at the default 2021 size.

Target on the 2-core machine: under 30 s and under 1.5 GB peak RSS. Each step runs
in a fresh child process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from measure import run_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accidents", type=int, default=56_000)
    args = parser.parse_args()
    python = [sys.executable, "-m", "training", "--log-level", "WARNING"]
    with tempfile.TemporaryDirectory() as folder:
        raw, out = Path(folder, "raw"), Path(folder, "dataset")
        synth = run_step(
            [*python, "synthesize", "--out", str(raw), "--accidents", str(args.accidents)]
        )
        build = run_step([*python, "build", "--raw", str(raw), "--out", str(out)])
        summary = json.loads(build.stdout)
    print(f"accidents              {args.accidents:>10,}")
    print(f"rows (train/test)      {summary['rows']['train']:>10,} / {summary['rows']['test']:,}")
    print(f"synthesize             {synth.seconds:>10.1f} s   peak RSS {synth.peak_rss_mb:,.0f} MB")
    print(f"build                  {build.seconds:>10.1f} s   peak RSS {build.peak_rss_mb:,.0f} MB")
    print(
        f"synthesize + build     {synth.seconds + build.seconds:>10.1f} s   "
        f"peak RSS {max(synth.peak_rss_mb, build.peak_rss_mb):,.0f} MB   "
        "(target < 30 s, < 1,500 MB)"
    )


if __name__ == "__main__":
    main()
