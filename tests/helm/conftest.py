"""Renders the chart once per ``ci/*-values.yaml`` scenario for the whole session.

The chart tests need Helm 3 (``.ci/install-helm.sh``) and helm-docs
(``.ci/build-go-tools.sh helm-docs``); checkov lives in its own venv
(``.ci/install-checkov.sh``). Without them the tests skip with that reason, except
under CI (``CI`` set), where a missing tool is a failure: a green CI must not mean
"nothing was checked".
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart import CHART, NAMESPACE, RELEASE, SCENARIOS, Rendered
from tools import chart_docs


def require_tool(name: str, found: str | None, install: str) -> str:
    if found:
        return found
    message = f"{name} is not installed ({install})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def helm() -> str:
    return require_tool("helm", shutil.which("helm"), "bash .ci/install-helm.sh")


@pytest.fixture(scope="session")
def helm_docs() -> str:
    """helm-docs, which renders the chart's README (tools/chart_docs.py)."""
    return require_tool(
        chart_docs.HELM_DOCS, shutil.which(chart_docs.HELM_DOCS), chart_docs.HELM_DOCS_INSTALL
    )


@pytest.fixture(scope="session")
def checkov() -> str:
    candidates = [
        os.environ.get("CHECKOV"),
        shutil.which("checkov"),
        str(Path(os.environ.get("CHECKOV_VENV", "/opt/checkov")) / "bin" / "checkov"),
    ]
    found = next((c for c in candidates if c and Path(c).is_file()), None)
    return require_tool("checkov", found, "bash .ci/install-checkov.sh")


@pytest.fixture(scope="session")
def template(helm: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``template(*args, release=RELEASE, chart=CHART)``: ``helm template`` in the
    release namespace, not checked (the caller asserts on the exit code and stderr)."""

    def _template(
        *args: str, release: str = RELEASE, chart: Path = CHART
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [helm, "template", release, str(chart), "--namespace", NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return _template


@pytest.fixture(scope="session")
def render(template: Callable[..., subprocess.CompletedProcess[str]]) -> Callable[..., Rendered]:
    """``render(scenario, *extra_args)``: ``helm template`` of the chart with that
    scenario's values, parsed; cached per arguments."""
    cache: dict[tuple[str, ...], Rendered] = {}

    def _render(scenario: str, *extra: str) -> Rendered:
        key = (scenario, *extra)
        if key not in cache:
            values = CHART / "ci" / f"{scenario}-values.yaml"
            result = template("-f", str(values), *extra)
            assert result.returncode == 0, result.stderr
            docs = [d for d in yaml.safe_load_all(result.stdout) if d]
            user_values: dict[str, Any] = yaml.safe_load(values.read_text()) or {}
            cache[key] = Rendered(scenario, docs, result.stdout, user_values)
        return cache[key]

    return _render


@pytest.fixture(params=SCENARIOS)
def scenario(request: pytest.FixtureRequest, render: Callable[..., Rendered]) -> Rendered:
    rendered: Rendered = render(request.param)
    return rendered
