"""One benchmark step in a fresh child process: wall time, CPU time and peak RSS.

Shared by the benchmarks that time a command as a Job runs it. The peak RSS is the
child's ``VmHWM`` (its own high-water mark since ``exec``), polled from /proc while it
runs: ``ru_maxrss`` (of ``RUSAGE_CHILDREN`` or ``wait4``) is no lower than the
parent's own peak at the time of the fork, because the kernel carries the pre-exec
address space's high-water mark over, so a benchmark holding a model and a data pool
would see its own size reported as every child's.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 0.01


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
        peak_kb, exited = [0], threading.Event()
        poller = threading.Thread(target=_poll_high_water, args=(process.pid, peak_kb, exited))
        poller.start()
        # Wait for the exit without reaping, so the pid cannot be reused under the poller.
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        seconds = time.perf_counter() - started
        exited.set()
        poller.join()
        _, status, usage = os.wait4(process.pid, 0)
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
        peak_rss_mb=peak_kb[0] / 1024,
        stdout=stdout,
    )


def _poll_high_water(pid: int, peak_kb: list[int], exited: threading.Event) -> None:
    """Keep the largest ``VmHWM`` (kB) of ``pid`` in ``peak_kb[0]`` until it exits.

    Popen returns once the child has exec'd, so every reading is the new program's;
    a zombie's status has no memory lines."""
    status = Path(f"/proc/{pid}/status")
    while not exited.is_set():
        with status.open() as lines:
            found = [int(line.split()[1]) for line in lines if line.startswith("VmHWM:")]
        if found:
            peak_kb[0] = max(peak_kb[0], found[0])
        exited.wait(POLL_SECONDS)
