"""Scoring validated rows: the float32 matrix, one model call, the per-row answer,
and the bookkeeping (metrics, /stats counts, inference log).

This is the hot path. What it does not do, on purpose: no pandas DataFrame (it costs
milliseconds per request), no scikit-learn call (the ONNX session is far faster; the
figures are in docs/scorer.md, "Speed"), no per-row metric lookups (label children
are resolved per version), no thread hand-off for small inputs (the call is shorter
than the hand-off).

Under concurrent load, single-row requests that reach the model in the same event-loop
turn share one model call (``Scorer.score_one``): most of a lone call's time is
spent fetching the model's trees back into the CPU caches that the rest of the
request evicted, so a call for several rows costs little more than a call for one.
Each row's probability is the same as scored alone (the model scores rows
independently; a test checks it), and no request waits for later traffic: the
shared call runs as soon as the requests already running have reached it. Requests
that come one at a time are scored at once, as waiting would only cost them a turn.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from core import contract
from core.tables import LogChunk
from service.inference_log import InferenceLog
from service.metrics import LABELS, TIERS, ScorerMetrics
from service.model_holder import LoadedModel

THREAD_MODEL_ROWS = 256
"""From this many rows the model call goes to a worker thread (onnxruntime releases
the GIL), so a big batch does not stall the single-row requests around it."""

SHARED_CALL_MAX_ROWS = 64
"""At most this many single-row requests share a model call: under a very high
concurrency, the requests past it get a call of their own rather than a longer wait."""

_DEP = contract.FEATURES_BY_NAME["dep"]
_DEP_COLUMN = contract.FEATURE_NAMES.index("dep")
_NAN = float("nan")


@dataclass(frozen=True)
class ConfidenceTiers:
    """``high`` when |probability - threshold| >= high_margin, ``medium`` when it is
    >= medium_margin, else ``low``."""

    high_margin: float
    medium_margin: float

    def index(self, probability: float, threshold: float) -> int:
        margin = abs(probability - threshold)
        if margin >= self.high_margin:
            return 0
        return 1 if margin >= self.medium_margin else 2

    def indices(self, probabilities: np.ndarray, threshold: float) -> np.ndarray:
        margin = np.abs(probabilities - threshold)
        return np.where(margin >= self.high_margin, 0, np.where(margin >= self.medium_margin, 1, 2))


@dataclass(frozen=True)
class ConfidenceBands:
    """Tiers measured at training time (the manifest's ``tiers``): probability band
    edges and the tier of each band, chosen so a tier says how often the predicted
    label was right on rows the model did not train on."""

    edges: np.ndarray
    band_tiers: np.ndarray
    _edge_list: list[float] = field(init=False, repr=False, compare=False)
    _band_list: list[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A row's tier by bisect on plain lists: numpy's searchsorted costs several
        # microseconds of call overhead for one value (the same order: side="right").
        object.__setattr__(self, "_edge_list", self.edges.tolist())
        object.__setattr__(self, "_band_list", self.band_tiers.tolist())

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> ConfidenceBands | None:
        """None when the manifest has no usable tiers (a version trained before them)."""
        record = manifest.get("tiers")
        if not isinstance(record, Mapping):
            return None
        try:
            edges = np.asarray(record["edges"], dtype=np.float64)
            band_tiers = np.asarray([TIERS.index(name) for name in record["tiers"]])
        except (KeyError, TypeError, ValueError):
            return None
        if len(band_tiers) != len(edges) + 1 or np.any(np.diff(edges) < 0):
            return None
        return cls(edges, band_tiers)

    def index(self, probability: float, threshold: float) -> int:
        return self._band_list[bisect.bisect_right(self._edge_list, probability)]

    def indices(self, probabilities: np.ndarray, threshold: float) -> np.ndarray:
        return self.band_tiers[np.searchsorted(self.edges, probabilities, side="right")]


@dataclass
class ScoringStats:
    """Counts since start for GET /stats; plain ints updated on the event loop."""

    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_monotonic: float = field(default_factory=time.monotonic)
    predictions: int = 0
    by_label: list[int] = field(default_factory=lambda: [0, 0])
    by_tier: list[int] = field(default_factory=lambda: [0, 0, 0])
    by_version: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "uptime_seconds": round(time.monotonic() - self.started_monotonic, 3),
            "predictions": self.predictions,
            "by_label": dict(zip(LABELS, self.by_label, strict=True)),
            "by_confidence": dict(zip(TIERS, self.by_tier, strict=True)),
            "by_model_version": dict(self.by_version),
        }


def encode_batch(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Column-wise twin of ``contract.encode_rows`` for validated rows (a test checks
    they agree). Validation already made every value an int, a float, a known
    department string or None, so each column is one numpy conversion (None becomes
    NaN) instead of one ``encode_value`` call per cell: about ten times faster on a
    1,000-row batch."""
    matrix = np.empty((len(rows), len(contract.FEATURES)), dtype=np.float32)
    for index, feature in enumerate(contract.FEATURES):
        name = feature.name
        if feature is _DEP:
            column = [contract.encode_value(_DEP, row[name]) for row in rows]
        else:
            column = [row[name] for row in rows]
        matrix[:, index] = np.asarray(column, dtype=np.float64)
    return matrix


def encode_one(row: Mapping[str, Any]) -> np.ndarray:
    """Single-row twin of ``contract.encode_rows`` for a validated row (a test checks
    they agree): half the cost, as it skips the per-cell type probing that raw rows
    need and validated ones do not."""
    values = [_NAN if (value := row[name]) is None else value for name in contract.FEATURE_NAMES]
    values[_DEP_COLUMN] = contract.encode_value(_DEP, row["dep"])
    return np.array((values,), dtype=np.float32)


class _Waiting(NamedTuple):
    """A single-row request waiting for its share of a model call."""

    loaded: LoadedModel
    matrix: np.ndarray
    row: Mapping[str, Any]
    request_id: str
    answer: asyncio.Future[dict[str, Any]]


class Scorer:
    def __init__(
        self,
        metrics: ScorerMetrics,
        tiers: ConfidenceTiers,
        inference_log: InferenceLog | None,
        stats: ScoringStats,
    ) -> None:
        self.metrics = metrics
        self.tiers = tiers
        self.inference_log = inference_log
        self.stats = stats
        self._bands: tuple[LoadedModel, ConfidenceTiers | ConfidenceBands] | None = None
        self._waiting: list[_Waiting] = []
        self._sharing = False
        self._turn_rows = 0

    def tiers_of(self, loaded: LoadedModel) -> ConfidenceTiers | ConfidenceBands:
        """The served model's measured tiers, read from its manifest once per loaded
        model; the margins of the settings for a model that has none."""
        cached = self._bands
        if cached is None or cached[0] is not loaded:
            cached = (loaded, ConfidenceBands.from_manifest(loaded.manifest) or self.tiers)
            self._bands = cached
        return cached[1]

    @property
    def sharing(self) -> bool:
        """Whether single-row requests now wait to share a model call: only after a
        turn in which several of them reached the model, and until a shared call
        finds a request alone; a lone request (concurrency 1) is scored at once."""
        return self._sharing

    async def score_one(
        self, loaded: LoadedModel, row: Mapping[str, Any], request_id: str
    ) -> dict[str, Any]:
        """The answer for one validated row. While requests come together, the row
        waits, at most until the requests already running have reached this point,
        to share a model call with them."""
        matrix = encode_one(row)
        loop = asyncio.get_running_loop()
        if not self._sharing:
            self._turn_rows += 1
            if self._turn_rows == 1:
                # Runs after the callbacks already queued: the other requests of this turn.
                loop.call_soon(self._end_turn)
            return self._score(loaded, matrix, ((row, request_id),))[0]
        answer: asyncio.Future[dict[str, Any]] = loop.create_future()
        waiting = self._waiting
        if not waiting:
            loop.call_soon(self._score_waiting)  # as above: after this turn's requests
        waiting.append(_Waiting(loaded, matrix, row, request_id, answer))
        if len(waiting) >= SHARED_CALL_MAX_ROWS:
            self._score_waiting()
        return await answer

    def _end_turn(self) -> None:
        self._sharing = self._turn_rows > 1
        self._turn_rows = 0

    def _score_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        if not waiting:  # taken early by a full group
            return
        self._sharing = len(waiting) > 1
        # Not the rows of requests cancelled meanwhile: they get no answer, so they
        # must not be logged or counted either.
        waiting = [item for item in waiting if not item.answer.cancelled()]
        start = 0
        while start < len(waiting):
            # A model swap between two requests gives two groups: a request is always
            # scored by the model it read.
            loaded = waiting[start].loaded
            end = start + 1
            while end < len(waiting) and waiting[end].loaded is loaded:
                end += 1
            self._score_group(loaded, waiting[start:end])
            start = end

    def _score_group(self, loaded: LoadedModel, group: list[_Waiting]) -> None:
        matrix = group[0].matrix if len(group) == 1 else np.concatenate([w.matrix for w in group])
        try:
            answers = self._score(loaded, matrix, [(w.row, w.request_id) for w in group])
        except Exception as error:
            if len(group) > 1:
                # Alone, so a row the model cannot score fails only its own request.
                for item in group:
                    self._score_group(loaded, [item])
                return
            group[0].answer.set_exception(error)
            return
        for item, answer in zip(group, answers, strict=True):
            item.answer.set_result(answer)

    def _score(
        self,
        loaded: LoadedModel,
        matrix: np.ndarray,
        requests: Sequence[tuple[Mapping[str, Any], str]],
    ) -> list[dict[str, Any]]:
        """One model call for ``matrix``, whose rows are those of ``requests`` (each
        row's values and request id); the answers, counted and logged."""
        probabilities = loaded.model.predict_proba(matrix)
        threshold = loaded.threshold
        version = loaded.version
        tiers = self.tiers_of(loaded)
        record = self.metrics.record_one
        stats = self.stats
        by_label, by_tier = stats.by_label, stats.by_tier
        answers = []
        for (_, request_id), probability in zip(requests, probabilities.tolist(), strict=True):
            prediction = 1 if probability >= threshold else 0
            tier = tiers.index(probability, threshold)
            record(version, prediction, probability, tier)
            by_label[prediction] += 1
            by_tier[tier] += 1
            answers.append(
                {
                    "prediction": prediction,
                    "label": LABELS[prediction],
                    "probability": probability,
                    "confidence": TIERS[tier],
                    "model_version": version,
                    "request_id": request_id,
                }
            )
        count = len(requests)
        stats.predictions += count
        stats.by_version[version] = stats.by_version.get(version, 0) + count
        if self.inference_log is not None:
            # One chunk for a shared call: fewer objects per request for the buffer
            # (and the garbage collector) to hold until the flush.
            self.inference_log.add(
                LogChunk(
                    tuple(request_id for _, request_id in requests),
                    time.time(),
                    version,
                    threshold,
                    probabilities,
                    matrix,
                    tuple(row["lat"] for row, _ in requests),
                    tuple(row["long"] for row, _ in requests),
                )
            )
        return answers

    async def score_many(
        self, loaded: LoadedModel, rows: Sequence[Mapping[str, Any]], request_id: str
    ) -> list[dict[str, Any]]:
        matrix = encode_batch(rows)
        if len(rows) >= THREAD_MODEL_ROWS:
            probabilities = await asyncio.to_thread(loaded.model.predict_proba, matrix)
        else:
            probabilities = loaded.model.predict_proba(matrix)
        threshold = loaded.threshold
        predictions = (probabilities >= threshold).astype(np.int64)
        tiers = self.tiers_of(loaded).indices(probabilities, threshold)
        positives = int(predictions.sum())
        tier_counts = np.bincount(tiers, minlength=3).tolist()
        version = loaded.version
        count = len(rows)
        self.metrics.record_many(version, positives, count, probabilities, tier_counts)
        stats = self.stats
        stats.predictions += count
        stats.by_label[1] += positives
        stats.by_label[0] += count - positives
        for tier, tier_count in enumerate(tier_counts):
            stats.by_tier[tier] += tier_count
        stats.by_version[version] = stats.by_version.get(version, 0) + count
        row_ids = [f"{request_id}-{i}" for i in range(count)]
        if self.inference_log is not None:
            self.inference_log.add(
                LogChunk(
                    row_ids,
                    time.time(),
                    version,
                    threshold,
                    probabilities,
                    matrix,
                    [row["lat"] for row in rows],
                    [row["long"] for row in rows],
                )
            )
        probability_list = probabilities.tolist()
        prediction_list = predictions.tolist()
        return [
            {
                "prediction": prediction,
                "label": LABELS[prediction],
                "probability": probability,
                "confidence": TIERS[tier],
                "model_version": version,
                "request_id": row_id,
            }
            for prediction, probability, tier, row_id in zip(
                prediction_list, probability_list, tiers.tolist(), row_ids, strict=True
            )
        ]
