"""One benchmark step in a fresh child process: wall time, CPU time and peak RSS.

Shared by the benchmarks that time a command as a Job runs it. The child is reaped
with ``os.wait4``, so the peak RSS is that child's own (with any children it waited
for), not the largest of every child so far as ``RUSAGE_CHILDREN`` reports.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    seconds: float
    """Wall time, interpreter start included."""
    cpu_seconds: float
    """User + system: what the step costs whatever else the shared machine is doing."""
    peak_rss_mb: float
    stdout: str

    @property
    def cores(self) -> float:
        """Average cores busy over the step (CPU / wall)."""
        return self.cpu_seconds / self.seconds if self.seconds else 0.0


def run_step(command: Sequence[str], *, env: Mapping[str, str] | None = None) -> Step:
    """Run ``command`` to the end; a non-zero exit raises SystemExit with its stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        # Reaped here, so Popen must not wait for it again.
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        shown = " ".join(command[:6])
        raise SystemExit(f"{shown} ... exited with {process.returncode}: {stderr.strip()[-2000:]}")
    return Step(
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        # Linux reports kilobytes.
        peak_rss_mb=usage.ru_maxrss / 1024,
        stdout=stdout,
    )
