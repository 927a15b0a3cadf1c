"""The model holder: verified loads, atomic swaps, and a poller that survives failures."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from core.registry import Registry
from service.errors import ModelLoadError
from service.metrics import ScorerMetrics
from service.model_holder import ModelHolder, verify_by_scoring
from service.storage_executor import StorageExecutor
from tests.service.helpers import V1, V2


def started_executor() -> StorageExecutor:
    executor = StorageExecutor(2)
    executor.start()
    return executor


def failures(metrics: ScorerMetrics) -> float:
    value = metrics.registry.get_sample_value("triage_model_reloads_total", {"result": "failure"})
    assert value is not None
    return value


def test_refresh_loads_then_reports_unchanged(registry: Registry) -> None:
    async def scenario() -> None:
        holder = ModelHolder(registry, "production", ScorerMetrics(), started_executor())
        first = await holder.refresh()
        assert (first.changed, first.version, first.previous_version) == (True, V1, None)
        second = await holder.refresh()
        assert (second.changed, second.version) == (False, V1)
        assert holder.current is not None and holder.current.runtime == "onnxruntime"

    asyncio.run(scenario())


def test_poller_picks_up_a_promotion_and_survives_failures(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        metrics = ScorerMetrics()
        holder = ModelHolder(registry, "production", metrics, started_executor())
        await holder.refresh()
        real_alias_version = registry.alias_version
        broken = {"left": 2}

        def flaky(alias: str = "production") -> str | None:
            # An exception type nobody expects, twice, then the truth.
            if broken["left"]:
                broken["left"] -= 1
                raise KeyError("surprise")
            return real_alias_version(alias)

        registry.promote(V2, reason="test")
        monkeypatch.setattr(registry, "alias_version", flaky)
        task = asyncio.create_task(holder.poll_forever(0.01))
        try:
            for _ in range(1000):
                if holder.current is not None and holder.current.version == V2:
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
        assert holder.current is not None and holder.current.version == V2
        assert failures(metrics) == 2
        assert holder.last_error is None

    asyncio.run(scenario())


def test_no_promoted_version_is_a_counted_failure(registry: Registry) -> None:
    async def scenario() -> None:
        metrics = ScorerMetrics()
        holder = ModelHolder(registry, "staging", metrics, started_executor())
        with pytest.raises(ModelLoadError, match=r"no version .* alias 'staging'"):
            await holder.refresh()
        assert holder.current is None
        assert failures(metrics) == 1

    asyncio.run(scenario())


class _Model:
    def __init__(self, output: np.ndarray, threshold: float = 0.5) -> None:
        self.output = output
        self.version = "fake"
        self.threshold = threshold
        self.runtime = "fake"
        self.manifest: Mapping[str, Any] = {}

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.output


@pytest.mark.parametrize(
    ("output", "threshold", "message"),
    [
        (np.array([0.5]), 0.5, "shape"),
        (np.array([0.5, 1.5]), 0.5, "warm-up returned"),
        (np.array([np.nan, 0.5]), 0.5, "warm-up returned"),
        (np.array([0.5, 0.5]), 1.0, "threshold"),
    ],
)
def test_warm_up_refuses_a_model_that_scores_nonsense(
    output: np.ndarray, threshold: float, message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        verify_by_scoring(_Model(output, threshold))
