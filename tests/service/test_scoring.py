"""Scoring helpers: the batch encoder's agreement with the contract, the tiers, and
concurrent single-row requests sharing a model call."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest

from core import contract
from core.registry import Registry
from service.metrics import ScorerMetrics
from service.model_holder import LoadedModel, ModelHolder
from service.schemas import AccidentFeatures, feature_row
from service.scoring import (
    SHARED_CALL_MAX_ROWS,
    ConfidenceBands,
    ConfidenceTiers,
    Scorer,
    ScoringStats,
    encode_batch,
    encode_one,
)
from service.storage_executor import StorageExecutor
from tests.service.helpers import V1, V2


def random_row(rng: random.Random) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for feature in contract.FEATURES:
        if not feature.required and rng.random() < 0.2:
            row[feature.name] = None
        elif feature.codes:
            row[feature.name] = rng.choice(list(feature.codes))
        elif feature.integer:
            assert feature.minimum is not None and feature.maximum is not None
            row[feature.name] = rng.randint(int(feature.minimum), int(feature.maximum))
        else:
            assert feature.minimum is not None and feature.maximum is not None
            row[feature.name] = rng.uniform(feature.minimum, feature.maximum)
    return row


def test_batch_encoder_agrees_with_the_contract() -> None:
    rng = random.Random(7)
    rows = [feature_row(AccidentFeatures.model_validate(random_row(rng))) for _ in range(500)]
    expected = contract.encode_rows(rows)
    actual = encode_batch(rows)
    assert actual.dtype == np.float32
    np.testing.assert_array_equal(actual, expected)


def test_single_row_encoder_agrees_with_the_contract() -> None:
    rng = random.Random(8)
    for _ in range(300):
        row = feature_row(AccidentFeatures.model_validate(random_row(rng)))
        actual = encode_one(row)
        assert actual.dtype == np.float32
        np.testing.assert_array_equal(actual, contract.encode_rows([row]))
        np.testing.assert_array_equal(encode_batch([row]), actual)


@pytest.mark.parametrize(
    ("probability", "threshold", "tier"),
    [
        (0.95, 0.5, "high"),
        (0.8, 0.5, "high"),
        (0.2, 0.5, "high"),
        (0.79, 0.5, "medium"),
        (0.65, 0.5, "medium"),
        (0.35, 0.5, "medium"),
        (0.64, 0.5, "low"),
        (0.5, 0.5, "low"),
        (0.36, 0.5, "low"),
        (0.05, 0.3, "medium"),
        (0.2, 0.3, "low"),
        (0.0, 0.3, "high"),
    ],
)
def test_tiers_measure_the_distance_to_the_threshold(
    probability: float, threshold: float, tier: str
) -> None:
    tiers = ConfidenceTiers(high_margin=0.3, medium_margin=0.15)
    names = ("high", "medium", "low")
    assert names[tiers.index(probability, threshold)] == tier
    vector = tiers.indices(np.array([probability]), threshold)
    assert names[int(vector[0])] == tier


@pytest.mark.parametrize(
    "record",
    [
        None,
        {"edges": [0.3, 0.2], "tiers": ["high", "medium", "low"]},
        {"edges": [0.3], "tiers": ["high"]},
        {"edges": [0.3], "tiers": ["high", "unheard-of"]},
        {"tiers": ["high"]},
    ],
)
def test_unusable_manifest_tiers_fall_back_to_the_margins(record: Any) -> None:
    assert ConfidenceBands.from_manifest({"tiers": record}) is None


def test_bands_put_an_edge_value_in_the_band_above() -> None:
    bands = ConfidenceBands.from_manifest(
        {"tiers": {"edges": [0.2, 0.5], "tiers": ["high", "low", "medium"]}}
    )
    assert bands is not None
    names = ("high", "medium", "low")
    probabilities = np.array([0.0, 0.2, 0.49, 0.5, 1.0])
    expected = ["high", "low", "low", "medium", "medium"]
    assert [names[bands.index(float(p), 0.5)] for p in probabilities] == expected
    assert [names[int(i)] for i in bands.indices(probabilities, 0.5)] == expected


# --- single-row requests sharing a model call ------------------------------------------


@dataclass
class CountingModel:
    """The real model, recording the row count of each call; rows whose
    ``nb_vehicules`` is ``refused_vehicles`` make the call fail."""

    inner: Any
    calls: list[int] = field(default_factory=list)
    refused_vehicles: float | None = None

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        self.calls.append(len(features))
        if self.refused_vehicles is not None and np.any(
            features[:, contract.FEATURE_NAMES.index("nb_vehicules")] == self.refused_vehicles
        ):
            raise RuntimeError("cannot score this row")
        result: np.ndarray = self.inner.predict_proba(features)
        return result


def loaded_models(registry: Registry) -> dict[str, LoadedModel]:
    async def load() -> dict[str, LoadedModel]:
        executor = StorageExecutor(1)
        executor.start()
        loaded = {}
        try:
            for alias, version in (("production", V1), ("v2", V2)):
                if version == V2:
                    registry.promote(V2, alias="v2", reason="test", replacing=None)
                holder = ModelHolder(registry, alias, ScorerMetrics(), executor)
                await holder.refresh()
                assert holder.current is not None
                loaded[version] = replace(holder.current, model=CountingModel(holder.current.model))
        finally:
            executor.shutdown()
        return loaded

    return asyncio.run(load())


def new_scorer() -> Scorer:
    return Scorer(ScorerMetrics(), ConfidenceTiers(0.3, 0.15), None, ScoringStats())


def validated_rows(count: int, seed: int = 9) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [feature_row(AccidentFeatures.model_validate(random_row(rng))) for _ in range(count)]


async def sharing_scorer(loaded: LoadedModel) -> Scorer:
    """A scorer that has seen two requests reach the model in one turn."""
    scorer = new_scorer()
    rows = validated_rows(2, seed=1)
    await asyncio.gather(*(scorer.score_one(loaded, row, "warm-up") for row in rows))
    assert scorer.sharing
    assert isinstance(loaded.model, CountingModel)
    loaded.model.calls.clear()
    return scorer


def test_requests_share_calls_only_while_they_come_together(registry: Registry) -> None:
    loaded = loaded_models(registry)[V1]
    model = loaded.model
    assert isinstance(model, CountingModel)
    rows = validated_rows(4)

    async def scenario() -> None:
        scorer = new_scorer()
        await scorer.score_one(loaded, rows[0], "lone")
        await asyncio.sleep(0)
        assert model.calls == [1] and not scorer.sharing
        # A first burst is scored at once, and switches to shared calls.
        await asyncio.gather(*(scorer.score_one(loaded, row, "burst") for row in rows[:3]))
        assert model.calls == [1, 1, 1, 1] and scorer.sharing
        await asyncio.gather(*(scorer.score_one(loaded, row, "burst") for row in rows))
        assert model.calls == [1, 1, 1, 1, 4] and scorer.sharing
        # A shared call that finds a request alone switches back.
        await scorer.score_one(loaded, rows[0], "lone")
        assert model.calls == [1, 1, 1, 1, 4, 1] and not scorer.sharing

    asyncio.run(scenario())


def test_concurrent_single_rows_share_one_model_call_with_the_answers_they_get_alone(
    registry: Registry,
) -> None:
    loaded = loaded_models(registry)[V1]
    model = loaded.model
    assert isinstance(model, CountingModel)
    rows = validated_rows(10)

    async def alone() -> list[dict[str, Any]]:
        scorer = new_scorer()
        return [await scorer.score_one(loaded, row, f"id-{i}") for i, row in enumerate(rows)]

    async def together() -> tuple[list[dict[str, Any]], ScoringStats]:
        scorer = await sharing_scorer(loaded)
        predictions = scorer.stats.predictions
        answers = await asyncio.gather(
            *(scorer.score_one(loaded, row, f"id-{i}") for i, row in enumerate(rows))
        )
        assert scorer.stats.predictions == predictions + 10
        return answers, scorer.stats

    expected = asyncio.run(alone())
    assert model.calls == [1] * 10
    model.calls.clear()
    answers, stats = asyncio.run(together())
    assert model.calls == [10]
    assert answers == expected
    assert [a["request_id"] for a in answers] == [f"id-{i}" for i in range(10)]
    assert sum(stats.by_label) == stats.predictions == sum(stats.by_tier)


def test_at_most_the_cap_of_rows_share_a_call(registry: Registry) -> None:
    loaded = loaded_models(registry)[V1]
    model = loaded.model
    assert isinstance(model, CountingModel)
    rows = validated_rows(SHARED_CALL_MAX_ROWS + 6)

    async def scenario() -> None:
        scorer = await sharing_scorer(loaded)
        await asyncio.gather(*(scorer.score_one(loaded, row, "id") for row in rows))

    asyncio.run(scenario())
    assert model.calls == [SHARED_CALL_MAX_ROWS, 6]


def test_a_row_the_model_cannot_score_fails_only_its_own_request(registry: Registry) -> None:
    loaded = loaded_models(registry)[V1]
    model = loaded.model
    assert isinstance(model, CountingModel)
    rows = validated_rows(3)
    rows[1] = {**rows[1], "nb_vehicules": 7}

    async def scenario() -> list[Any]:
        scorer = await sharing_scorer(loaded)
        model.refused_vehicles = 7.0
        return await asyncio.gather(
            *(scorer.score_one(loaded, row, f"id-{i}") for i, row in enumerate(rows)),
            return_exceptions=True,
        )

    first, failed, third = asyncio.run(scenario())
    assert isinstance(failed, RuntimeError)
    assert (first["request_id"], third["request_id"]) == ("id-0", "id-2")
    assert model.calls == [3, 1, 1, 1]


def test_each_request_is_scored_by_the_model_it_read_across_a_swap(registry: Registry) -> None:
    models = loaded_models(registry)
    rows = validated_rows(6)
    versions = [V1, V1, V2, V2, V1, V2]

    async def scenario() -> list[dict[str, Any]]:
        scorer = await sharing_scorer(models[V1])
        return await asyncio.gather(
            *(
                scorer.score_one(models[version], row, "id")
                for version, row in zip(versions, rows, strict=True)
            )
        )

    answers = asyncio.run(scenario())
    assert [a["model_version"] for a in answers] == versions
    for answer, version, row in zip(answers, versions, rows, strict=True):
        alone = models[version].model.predict_proba(encode_one(row))
        assert answer["probability"] == float(alone[0])


def test_a_request_cancelled_while_waiting_is_neither_scored_nor_counted(
    registry: Registry,
) -> None:
    loaded = loaded_models(registry)[V1]
    model = loaded.model
    assert isinstance(model, CountingModel)
    rows = validated_rows(3)

    async def scenario() -> tuple[list[Any], ScoringStats]:
        scorer = await sharing_scorer(loaded)
        tasks = [asyncio.create_task(scorer.score_one(loaded, row, "id")) for row in rows]
        await asyncio.sleep(0)  # every task is now waiting for the shared call
        tasks[1].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return results, scorer.stats

    results, stats = asyncio.run(scenario())
    assert isinstance(results[1], asyncio.CancelledError)
    assert model.calls == [2]
    assert stats.predictions == 2 + 2  # and the warm-up's two
