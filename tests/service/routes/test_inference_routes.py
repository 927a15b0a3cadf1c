"""POST /predict, /predict/batch and /feedback through the app, error paths included."""

from __future__ import annotations

import bisect
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service.metrics import TIERS
from service.scoring import ConfidenceTiers
from tests.factories import publish_model
from training import contract, layout
from training.registry import Registry

ROW = contract.example_row()


def required_only() -> dict[str, Any]:
    return {f.name: f.example for f in contract.FEATURES if f.required}


def test_predict_returns_the_documented_fields(client: TestClient) -> None:
    response = client.post("/predict", json=ROW)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "prediction",
        "label",
        "probability",
        "confidence",
        "model_version",
        "request_id",
    }
    assert body["prediction"] in (0, 1)
    assert body["label"] == contract.TARGET_LABELS[body["prediction"]]
    assert 0.0 <= body["probability"] <= 1.0
    assert (body["probability"] >= 0.5) == (body["prediction"] == 1)
    assert body["confidence"] in ("high", "medium", "low")
    assert body["model_version"] == "v1"
    assert response.headers["x-request-id"] == body["request_id"]


def test_predict_matches_the_registry_model(client: TestClient, registry: Registry) -> None:
    rows = [ROW, {**ROW, "nb_pedestrians": 1, "any_unhelmeted": 1, "vma": 110}, required_only()]
    expected = registry.load("v1").predict_proba(contract.encode_rows(rows))
    for row, probability in zip(rows, expected, strict=True):
        assert client.post("/predict", json=row).json()["probability"] == pytest.approx(
            probability, abs=1e-6
        )


def test_optional_features_may_be_null_or_absent(client: TestClient) -> None:
    nulls = {**ROW, **{f.name: None for f in contract.FEATURES if not f.required}}
    first = client.post("/predict", json=nulls).json()
    second = client.post("/predict", json=required_only()).json()
    assert first["probability"] == second["probability"]


def test_a_valid_client_request_id_is_kept(client: TestClient) -> None:
    response = client.post("/predict", json=ROW, headers={"X-Request-ID": "case-42.a:b"})
    assert response.json()["request_id"] == "case-42.a:b"
    assert response.headers["x-request-id"] == "case-42.a:b"


@pytest.mark.parametrize("bad", ["has space", "x" * 129, 'quote"d', "ünï"])
def test_an_unsafe_client_request_id_is_replaced(client: TestClient, bad: str) -> None:
    response = client.post("/predict", json=ROW, headers={"X-Request-ID": bad.encode("utf-8")})
    assert response.status_code == 200
    request_id = response.json()["request_id"]
    assert request_id != bad
    assert len(request_id) == 32


@pytest.mark.parametrize(
    ("change", "field", "kind"),
    [
        ({"any_unhelmeted": 9}, "body.any_unhelmeted", "literal_error"),
        ({"dep": "20"}, "body.dep", "literal_error"),
        ({"dep": 33}, "body.dep", "literal_error"),
        ({"vma": 300}, "body.vma", "less_than_equal"),
        ({"hour": -1}, "body.hour", "greater_than_equal"),
        ({"hour": "17"}, "body.hour", "int_type"),
        ({"hour": 17.5}, "body.hour", "int_type"),
        ({"oldest_age": True}, "body.oldest_age", "int_type"),
        ({"nb_pedestrians": -1}, "body.nb_pedestrians", "greater_than_equal"),
        ({"lat": "44.8"}, "body.lat", "float_type"),
        ({"lat": 91.0}, "body.lat", "less_than_equal"),
        ({"surprise": 1}, "body.surprise", "extra_forbidden"),
        ({"catr": None}, "body.catr", "literal_error"),
    ],
)
def test_invalid_features_get_422_with_field_and_reason(
    client: TestClient, change: dict[str, Any], field: str, kind: str
) -> None:
    response = client.post("/predict", json={**ROW, **change})
    assert response.status_code == 422
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    problems = {problem["field"]: problem for problem in body["detail"]}
    assert field in problems, body
    assert problems[field]["type"] == kind
    assert problems[field]["reason"]


def test_missing_required_feature_is_named(client: TestClient) -> None:
    row = dict(ROW)
    del row["lum"]
    problems = client.post("/predict", json=row).json()["detail"]
    assert {"field": "body.lum", "reason": "Field required", "type": "missing"} in problems


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b"null", b'"text"', b""],
    ids=["broken", "list", "null", "str", "empty"],
)
def test_malformed_bodies_get_422(client: TestClient, content: bytes) -> None:
    response = client.post(
        "/predict", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "Traceback" not in response.text


def test_validation_errors_are_counted_by_handler(client: TestClient) -> None:
    client.post("/predict", json={**ROW, "agg_": 0})
    client.post("/predict/batch", json={"rows": []})
    metrics = client.get("/metrics").text
    assert 'triage_validation_errors_total{handler="/predict"} 1.0' in metrics
    assert 'triage_validation_errors_total{handler="/predict/batch"} 1.0' in metrics


def test_body_over_the_limit_gets_413_without_being_read(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(max_body_bytes=2048)
    response = client.post(
        "/predict", content=b"x" * 4096, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "2048" in response.json()["detail"]
    assert response.headers["x-request-id"] == response.json()["request_id"]


def test_chunked_body_over_the_limit_gets_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=2048)
    chunks = iter([b"[" + b" " * 1500, b" " * 1500 + b"]"])
    response = client.post(
        "/predict/batch", content=chunks, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["request_id"]


def test_batch_scores_every_row_with_row_ids(client: TestClient, registry: Registry) -> None:
    rows = [ROW, {**ROW, "nb_pedestrians": 1, "any_unhelmeted": 1}, required_only()]
    response = client.post("/predict/batch", json={"rows": rows}, headers={"X-Request-ID": "b1"})
    assert response.status_code == 200
    body = response.json()
    assert body["request_id"] == "b1"
    assert body["model_version"] == "v1"
    expected = registry.load("v1").predict_proba(contract.encode_rows(rows))
    assert [p["request_id"] for p in body["predictions"]] == ["b1-0", "b1-1", "b1-2"]
    for prediction, probability in zip(body["predictions"], expected, strict=True):
        assert prediction["probability"] == pytest.approx(probability, abs=1e-6)
        assert prediction["model_version"] == "v1"


def test_batch_of_the_limit_passes_and_one_more_is_refused(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(batch_limit=5)
    assert client.post("/predict/batch", json={"rows": [ROW] * 5}).status_code == 200
    response = client.post("/predict/batch", json={"rows": [ROW] * 6})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "body.rows"
    assert (
        client.get("/openapi.json").json()["components"]["schemas"]["BatchPredictionRequest"][
            "properties"
        ]["rows"]["maxItems"]
        == 5
    )


def test_big_batch_scores_in_a_worker_thread(client: TestClient) -> None:
    rows = [{**ROW, "oldest_age": age % 100} for age in range(1000)]
    body = client.post("/predict/batch", json={"rows": rows}).json()
    assert len(body["predictions"]) == 1000
    single = client.post("/predict", json=rows[7]).json()
    assert body["predictions"][7]["probability"] == pytest.approx(single["probability"])


def test_batch_reports_the_invalid_row(client: TestClient) -> None:
    response = client.post("/predict/batch", json={"rows": [ROW, {**ROW, "lum": 0}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "body.rows.1.lum"


def test_not_ready_scorer_answers_503(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(registry_uri=str(tmp_path / "empty"))
    for path, body in (("/predict", ROW), ("/predict/batch", {"rows": [ROW]})):
        response = client.post(path, json=body)
        assert response.status_code == 503
        assert "no model is loaded" in response.json()["detail"]


def _feedback_frame(root: Path) -> pd.DataFrame:
    files = sorted((root / "feedback").rglob("*.parquet"))
    return pd.concat([pd.read_parquet(io.BytesIO(f.read_bytes())) for f in files])


def test_feedback_by_request_id_is_stored_as_parquet(
    client: TestClient, registry_root: Path
) -> None:
    request_id = client.post("/predict", json=ROW).json()["request_id"]
    response = client.post("/feedback", json={"request_id": request_id, "label": 1})
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "status": "stored",
        "request_id": request_id,
        "label": "prioritaire",
        "key": body["key"],
    }
    assert body["key"].startswith(layout.FEEDBACK_PREFIX + "date=")
    frame = _feedback_frame(registry_root)
    assert list(frame.columns) == list(layout.FEEDBACK_COLUMNS)
    assert frame[layout.REQUEST_ID].tolist() == [request_id]
    assert frame[layout.LABEL].tolist() == [1]
    assert frame[list(contract.FEATURE_NAMES)].isna().all(axis=None)
    assert 'triage_feedback_labels_total{label="prioritaire"} 1.0' in client.get("/metrics").text


def test_feedback_with_features_only_uses_the_request_id(
    client: TestClient, registry_root: Path
) -> None:
    response = client.post(
        "/feedback", json={"label": 0, "features": ROW}, headers={"X-Request-ID": "fb-1"}
    )
    assert response.json()["request_id"] == "fb-1"
    frame = _feedback_frame(registry_root)
    assert frame.iloc[0]["dep"] == "33"
    assert frame.iloc[0]["nb_pedestrians"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"label": 1},
        {"request_id": "x", "label": 2},
        {"request_id": "bad id", "label": 1},
        {"request_id": "x", "label": 1, "features": {**ROW, "any_unhelmeted": 7}},
        {"request_id": "x", "label": 1, "extra": True},
    ],
)
def test_invalid_feedback_gets_422(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post("/feedback", json=body).status_code == 422


def test_confidence_comes_from_the_bands_measured_at_training(
    registry: Registry, make_client: Callable[..., TestClient]
) -> None:
    # This small model is sure of itself (probabilities within 1e-4 of 0 or 1): edges
    # close to 0 and 1 tell the bands from the settings' margins (all "high" there).
    edges = [1e-5, 2e-5, 0.5, 0.999995, 0.999999]
    tiers = ["high", "medium", "low", "low", "medium", "high"]
    manifest_tiers = {"tiers": {"edges": edges, "tiers": tiers}}
    publish_model(registry, "v3", seed=3, manifest_extra=manifest_tiers)
    client = make_client()
    rows = [ROW | {"catu": catu, "vma": vma} for catu in (1, 2, 3) for vma in (30, 50, 80, 90, 130)]
    body = client.post("/predict/batch", json={"rows": rows}).json()
    single = client.post("/predict", json=rows[0]).json()
    margins = ConfidenceTiers(high_margin=0.3, medium_margin=0.15)
    differing = 0
    for answer in [*body["predictions"], single]:
        assert answer["model_version"] == "v3"
        band = bisect.bisect_right(edges, answer["probability"])
        assert answer["confidence"] == tiers[band], answer
        differing += answer["confidence"] != TIERS[margins.index(answer["probability"], 0.5)]
    assert differing, "the rows must tell the bands from the margins"
