"""The scorer's metrics: names from docs/metrics.md, the bulk histogram, and the whole
exposition through ``promtool check metrics``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from core import contract
from service.metrics import PROBABILITY_BUCKETS, BulkHistogram, ScorerMetrics

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ROW = contract.example_row()


def scorer_metric_names() -> set[str]:
    """The first column of the scorer's table in docs/metrics.md."""
    text = DOCS.read_text()
    section = text.split("## Scorer", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))


def exposed_families(text: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE))


def test_every_documented_scorer_metric_is_exposed(client: TestClient) -> None:
    client.post("/predict", json=ROW)
    families = exposed_families(client.get("/metrics").text)
    documented = scorer_metric_names()
    assert len(documented) == 17
    missing = documented - families
    assert missing == set()


def test_no_undocumented_metric_is_exposed(client: TestClient) -> None:
    client.post("/predict", json=ROW)
    families = exposed_families(client.get("/metrics").text)
    documented = scorer_metric_names()
    # The client adds a *_created gauge beside each counter (its creation time).
    created = {name.removesuffix("_total") + "_created" for name in documented}
    extra = families - documented - created
    assert extra == set()


def test_labels_are_the_documented_ones(client: TestClient) -> None:
    client.post("/predict", json=ROW)
    client.post("/predict/batch", json={"rows": [ROW, ROW]})
    text = client.get("/metrics").text
    assert re.search(
        r'^triage_predictions_total\{label="(prioritaire|non-prioritaire)",model_version="v1"\} ',
        text,
        re.M,
    )
    assert 'triage_prediction_confidence_total{tier="high"}' in text
    assert "triage_prediction_probability_count 3.0" in text
    assert 'http_requests_inprogress{handler="/predict",method="POST"} 0.0' in text
    assert "triage_model_reference_prioritaire_share 0.4" in text
    assert "triage_model_load_duration_seconds " in text
    assert "triage_inference_log_buffer_rows " in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_the_exposition_passes_promtool(client: TestClient) -> None:
    client.post("/predict", json=ROW)
    client.post("/predict/batch", json={"rows": [ROW] * 3})
    client.post("/predict", json={**ROW, "agg_": 0})
    client.post("/feedback", json={"request_id": "x", "label": 0})
    exposition = client.get("/metrics").content
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "", result.stdout.decode()


def test_bulk_histogram_matches_prometheus_histogram() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.uniform(0, 1, 500), np.array(PROBABILITY_BUCKETS), [0.0, 1.0]])
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = BulkHistogram("p", "doc", PROBABILITY_BUCKETS)
    ours_registry.register(ours)
    theirs = Histogram("p", "doc", buckets=PROBABILITY_BUCKETS, registry=theirs_registry)
    ours.observe_many(values[:300])
    for value in values[300:]:
        ours.observe(float(value))
    for value in values:
        theirs.observe(float(value))
    for bound in [*map(str, PROBABILITY_BUCKETS), "+Inf"]:
        labels = {"le": bound}
        assert ours_registry.get_sample_value(
            "p_bucket", labels
        ) == theirs_registry.get_sample_value("p_bucket", labels), bound
    assert ours_registry.get_sample_value("p_count") == theirs_registry.get_sample_value("p_count")
    assert ours_registry.get_sample_value("p_sum") == pytest.approx(
        theirs_registry.get_sample_value("p_sum")
    )


def test_each_app_has_its_own_registry() -> None:
    first, second = ScorerMetrics(), ScorerMetrics()
    first.model_swapped("a", "onnxruntime", 0.1, None, selection="following")
    assert b'version="a"' in generate_latest(first.registry)
    assert b'version="a"' not in generate_latest(second.registry)


def test_http_metrics_cache_only_the_app_routes(client: TestClient) -> None:
    from service.http_metrics import _InstrumentationMiddleware

    for i in range(30):
        assert client.get(f"/no-such-path-{i}").status_code == 404
    assert client.post("/predict", json=ROW).status_code == 200
    assert client.post("/predict", json=ROW).status_code == 200
    layer: Any = client.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(layer, _InstrumentationMiddleware):
        layer = layer.app
    assert set(layer._handled) == {("POST", "/predict")}
    metrics = client.get("/metrics").text
    assert 'http_requests_total{handler="none",method="GET",status="4xx"} 30.0' in metrics
    assert 'http_requests_total{handler="/predict",method="POST",status="2xx"} 2.0' in metrics
    assert 'http_request_duration_seconds_count{handler="/predict",method="POST"} 2.0' in metrics
    assert 'http_requests_inprogress{handler="/predict",method="POST"} 0.0' in metrics
