"""``python -m tools``, run from the checkout as a developer runs it: one-line errors
and the project's exit codes; the demo and the simulator are no longer subcommands of
the drift job's command line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


@pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is not None, reason="matplotlib is installed"
)
def test_render_dashboards_without_matplotlib_says_what_to_install() -> None:
    result = _run("-m", "tools", "render-dashboards", "--prometheus", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: render-dashboards needs matplotlib, which no role depends on: "
        "pip install matplotlib"
    ]


def test_bad_simulator_arguments_are_a_usage_error_on_one_line() -> None:
    result = _run("-m", "tools", "simulate", "--url", "http://127.0.0.1:9", "--rows", "x.parquet",
                  "--drift", "night-rural")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --drift applies to synthetic rows; leave it out with --rows"
    )


@pytest.mark.parametrize("command", ["demo", "simulate"])
def test_the_drift_jobs_command_line_has_no_development_tools(command: str) -> None:
    result = _run("-m", "monitoring", command, "--help")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
