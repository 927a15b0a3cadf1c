"""Every Prometheus metric of the scorer, on one explicit registry per app.

Names and labels are those of ``docs/metrics.md`` (dashboards and alerts use them).
The per-prediction updates sit on the hot path, so label children are resolved once
per model version, and the probability histogram takes a whole batch in one numpy
call instead of one ``observe`` per row.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from core import contract

LABELS: tuple[str, str] = (contract.TARGET_LABELS[0], contract.TARGET_LABELS[1])
TIERS: tuple[str, str, str] = ("high", "medium", "low")

REQUEST_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Seconds. A scored request takes about a millisecond here; the buckets resolve the
1-10 ms range where the latency objective lives."""

PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


class BulkHistogram(Collector):
    """A label-less histogram that accepts a whole array at once.

    prometheus_client's Histogram only has a per-value ``observe`` (a lock and a
    bucket scan per row): 1,000 of them cost about a millisecond per batch request,
    more than the model call. Exposition is the standard histogram family.
    """

    def __init__(self, name: str, documentation: str, buckets: Iterable[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = np.asarray(sorted(buckets), dtype=np.float64)
        self._bound_list = [float(b) for b in self.bounds]
        # One slot per bound plus the +Inf overflow; non-cumulative, summed on collect.
        self._counts = [0] * (len(self.bounds) + 1)
        self._sum = 0.0
        # Updates come from the event loop, collection from the /metrics thread.
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le).
        slot = bisect.bisect_left(self._bound_list, value)
        with self._lock:
            self._counts[slot] += 1
            self._sum += value

    def observe_many(self, values: np.ndarray) -> None:
        slots = np.searchsorted(self.bounds, values, side="left")
        counts = np.bincount(slots, minlength=len(self._counts))
        total = float(np.sum(values))
        with self._lock:
            for slot, count in enumerate(counts.tolist()):
                self._counts[slot] += count
            self._sum += total

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts = list(self._counts)
            total = self._sum
        cumulative, buckets = 0, []
        for bound, count in zip(self._bound_list, counts, strict=False):
            cumulative += count
            buckets.append((_bound_text(bound), cumulative))
        buckets.append(("+Inf", cumulative + counts[-1]))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], buckets, sum_value=total)
        yield family


def _bound_text(bound: float) -> str:
    # The text format writes bounds as floats ("0.1", "1.0"), like Histogram does.
    return repr(float(bound))


class ScorerMetrics:
    """The scorer's own metrics. HTTP metrics are added by the instrumentation
    middleware (``service.app``) on the same registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.predictions = Counter(
            "triage_predictions_total",
            "Scored rows, by predicted label and model version.",
            ["label", "model_version"],
            registry=r,
        )
        self.probability = BulkHistogram(
            "triage_prediction_probability",
            "Predicted probability of prioritaire.",
            PROBABILITY_BUCKETS,
        )
        r.register(self.probability)
        self.confidence = Counter(
            "triage_prediction_confidence_total",
            "Scored rows by confidence tier.",
            ["tier"],
            registry=r,
        )
        self.model_info = Gauge(
            "triage_model_info",
            "The model served by this pod (always 1); selection: pinned by "
            "SCORER_MODEL_VERSION or following the alias.",
            ["version", "runtime", "selection"],
            registry=r,
        )
        self.model_loaded = Gauge(
            "triage_model_loaded", "1 when a verified model is loaded, else 0.", registry=r
        )
        self.model_load_duration = Gauge(
            "triage_model_load_duration_seconds",
            "Time the last successful model load took (download, verification, warm-up).",
            registry=r,
        )
        self.reference_share = Gauge(
            "triage_model_reference_prioritaire_share",
            "Share of prioritaire in the served model's training data.",
            registry=r,
        )
        self.reloads = Counter(
            "triage_model_reloads_total",
            "Model load attempts that changed (success) or failed to change (failure) "
            "the served model.",
            ["result"],
            registry=r,
        )
        self.validation_errors = Counter(
            "triage_validation_errors_total",
            "Requests refused with 422, by handler.",
            ["handler"],
            registry=r,
        )
        self.log_rows_written = Counter(
            "triage_inference_log_rows_written_total",
            "Rows flushed to the inference log.",
            registry=r,
        )
        self.log_rows_dropped = Counter(
            "triage_inference_log_rows_dropped_total",
            "Inference-log rows lost because the storage stayed down and the buffer was full.",
            registry=r,
        )
        self.log_buffer_rows = Gauge(
            "triage_inference_log_buffer_rows",
            "Inference-log rows waiting to be flushed.",
            registry=r,
        )
        self.feedback_labels = Counter(
            "triage_feedback_labels_total", "Feedback labels stored.", ["label"], registry=r
        )
        self.retrain_requests = Counter(
            "triage_retrain_requests_total",
            "POST /retrain calls, accepted or rejected.",
            ["result"],
            registry=r,
        )
        # Series that alerts divide by or compare must exist before their first event.
        for tier in TIERS:
            self.confidence.labels(tier)
        for result in ("success", "failure"):
            self.reloads.labels(result)
        for label in LABELS:
            self.feedback_labels.labels(label)
        for result in ("accepted", "rejected"):
            self.retrain_requests.labels(result)
        self.model_loaded.set(0)
        self.reference_share.set(float("nan"))
        self._tier_children = tuple(self.confidence.labels(tier) for tier in TIERS)
        self._label_children: dict[str, tuple[Any, Any]] = {}

    def model_swapped(
        self,
        version: str,
        runtime: str,
        load_seconds: float,
        reference_share: float | None,
        *,
        selection: str,
    ) -> None:
        self.model_info.clear()
        self.model_info.labels(version, runtime, selection).set(1)
        self.model_loaded.set(1)
        self.model_load_duration.set(load_seconds)
        # NaN, not 0, when the manifest does not say: an alert comparing the live
        # prediction mix with it must not fire on a missing value.
        self.reference_share.set(float("nan") if reference_share is None else reference_share)
        self._children(version)

    def _children(self, version: str) -> tuple[Any, Any]:
        children = self._label_children.get(version)
        if children is None:
            children = (
                self.predictions.labels(LABELS[0], version),
                self.predictions.labels(LABELS[1], version),
            )
            self._label_children[version] = children
        return children

    def record_one(self, version: str, prediction: int, probability: float, tier: int) -> None:
        """One scored row; ``tier`` indexes :data:`TIERS`."""
        self._children(version)[prediction].inc()
        self._tier_children[tier].inc()
        self.probability.observe(probability)

    def record_many(
        self,
        version: str,
        positives: int,
        rows: int,
        probabilities: np.ndarray,
        tier_counts: Iterable[int],
    ) -> None:
        negative, positive = self._children(version)
        if positives:
            positive.inc(positives)
        if rows - positives:
            negative.inc(rows - positives)
        for child, count in zip(self._tier_children, tier_counts, strict=True):
            if count:
                child.inc(count)
        self.probability.observe_many(probabilities)
