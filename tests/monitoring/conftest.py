"""Fixtures of the monitoring tests: one registry with a small real model fitted once
per session, per-test storages for inference logs and reports, settings on them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.registry import Registry
from core.storage import Storage, open_storage
from monitoring.settings import MonitoringSettings
from tests.monitoring.support import (
    METRICS,
    MODEL_NAME,
    NEW,
    OLD,
    TrainedModel,
    publish_trained_model,
    publish_version,
)
from tests.support import LOOPBACK, free_port, running_process

# Evidently's telemetry must never try the network from a test.
os.environ.setdefault("DO_NOT_TRACK", "1")

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PUSHGATEWAY = "prometheus-pushgateway"


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """Fitted once per session (a few seconds); tests only read this registry."""
    return publish_trained_model(tmp_path_factory.mktemp("monitoring-registry"))


@pytest.fixture
def live_root(tmp_path: Path) -> Path:
    root = tmp_path / "live"
    root.mkdir()
    return root


@pytest.fixture
def live_storage(live_root: Path) -> Storage:
    """Where this test's scorer 'wrote' its inference logs, and where reports go."""
    return open_storage(str(live_root))


@pytest.fixture
def registry_root(trained_model: TrainedModel, tmp_path: Path) -> Path:
    """A private copy of the session's registry: a drift run that retrains writes its
    claim there, which must not hold back the next test's run of the same window."""
    root = tmp_path / "registry"
    shutil.copytree(trained_model.registry_uri, root)
    return root


@pytest.fixture
def make_settings(registry_root: Path, live_root: Path) -> Callable[..., MonitoringSettings]:
    def make(**overrides: Any) -> MonitoringSettings:
        values: dict[str, Any] = {
            "registry_uri": str(registry_root),
            "inference_log_uri": str(live_root),
            "report_uri": str(live_root),
            "window_end": NOW,
            "window_hours": 24,
            "retrain_mode": "disabled",
            **overrides,
        }
        return MonitoringSettings(**values)

    return make


@pytest.fixture(scope="session")
def pushgateway() -> Iterator[str]:
    """The real Pushgateway (Debian package prometheus-pushgateway) on a loopback port,
    without persistence. Missing binary: a failure in CI, a skip elsewhere."""
    binary = shutil.which(PUSHGATEWAY)
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"{PUSHGATEWAY} is not installed (Debian package prometheus-pushgateway)")
        pytest.skip(f"{PUSHGATEWAY} is not installed (apt-get install prometheus-pushgateway)")
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    command = [binary, f"--web.listen-address={LOOPBACK}:{port}", "--persistence.file="]
    with running_process(command, ready_url=f"{url}/-/ready"):
        yield url


@pytest.fixture
def versions(registry_root: Path) -> Registry:
    """Two versions with held-out metrics in the registry copy, the newer in production."""
    publish_version(registry_root, OLD, METRICS)
    publish_version(registry_root, NEW, {**METRICS, "accuracy": 0.9})
    registry = Registry(open_storage(str(registry_root)), MODEL_NAME)
    registry.promote(NEW, reason="test")
    return registry
