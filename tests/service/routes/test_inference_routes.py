"""POST /predict, /predict/batch and /feedback through the app, error paths included."""

from __future__ import annotations

import bisect
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from core import contract, layout
from core.registry import Registry
from service.metrics import TIERS
from service.scoring import ConfidenceTiers
from tests.factories import publish_model
from tests.service.helpers import API_KEY, AUTH

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


def test_a_client_request_id_traces_and_the_prediction_carries_an_issued_id(
    client: TestClient,
) -> None:
    response = client.post("/predict", json=ROW, headers={"X-Request-ID": "case-42.a:b"})
    assert response.headers["x-request-id"] == "case-42.a:b"
    issued = response.json()["request_id"]
    assert issued != "case-42.a:b" and len(issued) == 40
    refused = client.post("/feedback", json={"request_id": "case-42.a:b", "label": 1})
    assert refused.status_code == 422
    assert "not issued by this scorer" in refused.json()["detail"][0]["reason"]
    assert client.post("/feedback", json={"request_id": issued, "label": 1}).status_code == 200


@pytest.mark.parametrize("bad", ["has space", "x" * 129, 'quote"d', "ünï"])
def test_an_unsafe_client_request_id_is_replaced(client: TestClient, bad: str) -> None:
    response = client.post("/predict", json=ROW, headers={"X-Request-ID": bad.encode("utf-8")})
    assert response.status_code == 200
    request_id = response.json()["request_id"]
    assert request_id != bad
    assert len(request_id) == 40


@pytest.mark.parametrize(
    ("change", "field", "kind"),
    [
        ({"any_unhelmeted": 9}, "body.any_unhelmeted", "literal_error"),
        ({"dep": "20"}, "body.dep", "literal_error"),
        ({"dep": 33}, "body.dep", "literal_error"),
        ({"vma": 300}, "body.vma", "less_than_equal"),
        ({"hour": -1}, "body.hour", "greater_than_equal"),
        ({"hour": "17"}, "body.hour", "integer_type"),
        ({"hour": 17.5}, "body.hour", "integer_type"),
        ({"oldest_age": True}, "body.oldest_age", "integer_type"),
        ({"nb_pedestrians": -1}, "body.nb_pedestrians", "greater_than_equal"),
        ({"lat": "44.8"}, "body.lat", "float_type"),
        ({"lat": 91.0}, "body.lat", "less_than_equal"),
        ({"surprise": 1}, "body.surprise", "extra_forbidden"),
        ({"catr": None}, "body.catr", "integer_type"),
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


def _one_feature_of_each_kind() -> list[contract.Feature]:
    """An integer range feature, an integer-coded and a string-coded categorical one,
    and a decimal one: every kind the contract has (checked below)."""
    kinds: dict[tuple[bool, bool, bool], contract.Feature] = {}
    for feature in contract.FEATURES:
        categorical = feature.kind is contract.Kind.CATEGORICAL
        kinds.setdefault((categorical, feature.is_string_coded, feature.integer), feature)
    assert len(kinds) == 4, kinds.keys()
    return list(kinds.values())


KINDS = _one_feature_of_each_kind()


def _value(feature: contract.Feature) -> Any:
    return next(iter(feature.codes)) if feature.codes else ROW[feature.name]


def _post(client: TestClient, batch: bool, row: dict[str, Any]) -> Any:
    if batch:
        return client.post("/predict/batch", json={"rows": [ROW, row]})
    return client.post("/predict", json=row)


def _probabilities(body: dict[str, Any]) -> list[float]:
    return [p["probability"] for p in body.get("predictions", [body])]


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
@pytest.mark.parametrize("feature", KINDS, ids=lambda f: f.name)
def test_numbers_follow_the_published_schema_for_every_feature_kind(
    client: TestClient, feature: contract.Feature, batch: bool
) -> None:
    """JSON Schema's integer is a number without a fractional part: 45.0 is 45,
    for integer ranges and integer codes alike; 45.5, booleans and strings are refused
    everywhere, and a department code is a string, never a number."""
    schema = client.get("/openapi.json").json()["components"]["schemas"]["AccidentFeatures"]
    published = schema["properties"][feature.name]
    published = published.get("anyOf", [published])[0]
    value = _value(feature)
    valid = _post(client, batch, {**ROW, feature.name: value})
    assert valid.status_code == 200, valid.text
    if feature.is_string_coded:
        assert published["type"] == "string"
        refused: list[Any] = [True, False, 33, 33.0, None if feature.required else [value]]
    elif feature.integer:
        assert published["type"] == "integer"
        same = _post(client, batch, {**ROW, feature.name: float(value)})
        assert same.status_code == 200, same.text
        assert _probabilities(same.json()) == _probabilities(valid.json())
        refused = [value + 0.5, True, False, str(value)]
    else:
        assert published["type"] == "number"
        refused = [True, False, str(value)]
    for bad in refused:
        response = _post(client, batch, {**ROW, feature.name: bad})
        assert response.status_code == 422, (bad, response.text)
        [problem] = response.json()["detail"]
        assert problem["field"].endswith(feature.name)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
@pytest.mark.parametrize("path", ["/predict", "/predict/batch", "/feedback"])
def test_a_body_that_is_not_json_gets_415(
    client: TestClient, path: str, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    body = json.dumps({"rows": [ROW]} if path.endswith("batch") else ROW).encode()
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]
    assert response.json()["request_id"] == response.headers["x-request-id"]
    charset = client.post(
        "/predict",
        content=json.dumps(ROW),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200


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
    assert response.headers["x-request-id"] == "b1"
    issued = body["request_id"]
    assert body["model_version"] == "v1"
    expected = registry.load("v1").predict_proba(contract.encode_rows(rows))
    assert [p["request_id"] for p in body["predictions"]] == [f"{issued}-{i}" for i in range(3)]
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
    assert body == {"status": "stored", "request_id": request_id, "label": "prioritaire"}
    frame = _feedback_frame(registry_root)
    assert list(frame.columns) == list(layout.FEEDBACK_COLUMNS)
    assert frame[layout.REQUEST_ID].tolist() == [request_id]
    assert frame[layout.LABEL].tolist() == [1]
    assert frame[list(contract.FEATURE_NAMES)].isna().all(axis=None)
    assert 'triage_feedback_labels_total{label="prioritaire"} 1.0' in client.get("/metrics").text


def test_feedback_with_features_needs_the_key_and_uses_the_issued_id(
    client: TestClient, registry_root: Path
) -> None:
    body = {"label": 0, "features": ROW}
    refused = client.post("/feedback", json=body)
    assert refused.status_code == 403
    assert "admin key" in refused.json()["detail"]
    assert client.post("/feedback", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
    response = client.post("/feedback", json=body, headers={**AUTH, "X-Request-ID": "fb-1"})
    assert response.status_code == 200
    assert len(response.json()["request_id"]) == 40
    frame = _feedback_frame(registry_root)
    assert frame.iloc[0]["dep"] == "33"
    assert frame.iloc[0]["nb_pedestrians"] == 0


@pytest.mark.parametrize(
    "request_id",
    [
        "never-scored",
        "0" * 32,
        "0" * 40,
        "{issued}x",
        "{issued}-01",
        "{issued}-1000",
        "{issued}-1-2",
        "{forged}",
        "{retimed}",
    ],
)
def test_feedback_for_an_id_the_scorer_did_not_issue_is_refused(
    client: TestClient, registry_root: Path, request_id: str
) -> None:
    issued = client.post("/predict", json=ROW).json()["request_id"]
    forged = issued[:16] + ("0" if issued[16] != "0" else "1") + issued[17:]
    # Another issue time with the MAC of the real one: the time is signed too.
    retimed = issued[:7] + ("0" if issued[7] != "0" else "1") + issued[8:]
    labelled = request_id.format(issued=issued, forged=forged, retimed=retimed)
    response = client.post("/feedback", json={"request_id": labelled, "label": 1})
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["field"] == "body.request_id"
    assert "not issued by this scorer" in problem["reason"]
    assert not (registry_root / layout.FEEDBACK_PREFIX).exists()
    # The admin may label any id (a label from another system, say).
    assert (
        client.post(
            "/feedback", json={"request_id": labelled, "label": 1}, headers=AUTH
        ).status_code
        == 200
    )


def test_another_replica_with_the_same_key_accepts_the_ids(
    make_client: Callable[..., TestClient],
) -> None:
    first = make_client(request_id_key="shared-secret")
    second = make_client(request_id_key="shared-secret")
    other = make_client(request_id_key="another-secret")
    batch = first.post("/predict/batch", json={"rows": [ROW, ROW]}).json()["request_id"]
    assert (
        second.post("/feedback", json={"request_id": f"{batch}-1", "label": 0}).status_code == 200
    )
    assert other.post("/feedback", json={"request_id": f"{batch}-0", "label": 0}).status_code == 422


def test_the_first_label_wins_and_only_the_admin_overwrites(
    client: TestClient, registry_root: Path
) -> None:
    issued = client.post("/predict", json=ROW).json()["request_id"]
    assert client.post("/feedback", json={"request_id": issued, "label": 1}).status_code == 200
    again = client.post("/feedback", json={"request_id": issued, "label": 0})
    assert again.status_code == 409
    assert "first one wins" in again.json()["detail"]
    overwrite = {"request_id": issued, "label": 0, "overwrite": True}
    assert client.post("/feedback", json=overwrite).status_code == 403
    assert client.post("/feedback", json=overwrite, headers=AUTH).status_code == 200
    frame = _feedback_frame(registry_root).sort_values(layout.RECEIVED_AT)
    assert frame[layout.LABEL].tolist() == [1, 0]
    assert frame[layout.OVERWRITE].tolist() == [False, True]


def test_feedback_is_rate_limited_per_client_except_for_the_admin(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(api_key=API_KEY, feedback_burst=3, feedback_rate_per_second=0.01)
    ids = [client.post("/predict", json=ROW).json()["request_id"] for _ in range(5)]
    answers = [client.post("/feedback", json={"request_id": i, "label": 1}) for i in ids[:4]]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[3].headers["retry-after"]) >= 1
    assert "too many feedback labels" in answers[3].json()["detail"]
    admin = client.post("/feedback", json={"request_id": ids[4], "label": 1}, headers=AUTH)
    assert admin.status_code == 200


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
    rows = [
        ROW | {"nb_pedestrians": pedestrians, "any_unhelmeted": unhelmeted, "vma": vma}
        for pedestrians in (0, 2)
        for unhelmeted in (0, 1)
        for vma in (30, 50, 80, 90, 130)
    ]
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
