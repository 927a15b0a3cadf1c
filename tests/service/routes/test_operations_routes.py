"""GET /health, /ready, /model/info, /stats, /metrics, and the generic error paths."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core import contract, layout
from core.storage import S3Storage
from service.app import create_app
from service.settings import ScorerSettings
from tests.service.helpers import AUTH
from tests.support import free_port

ROW = contract.example_row()


def test_health_is_up_even_without_a_model(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(registry_uri=str(tmp_path / "empty"))
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_is_503_until_a_model_is_loaded(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(registry_uri=str(tmp_path / "empty"))
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    assert "no version" in response.json()["detail"]


def test_ready_names_the_served_version(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["model_version"] == "v1"


def test_model_info_is_a_public_summary_and_the_manifest_needs_the_key(
    client: TestClient,
) -> None:
    info = client.get("/model/info").json()
    assert info["version"] == "v1"
    assert info["alias"] == "production"
    assert info["name"] == "accident-severity"
    assert info["runtime"] == "onnxruntime"
    assert info["threshold"] == 0.5
    assert info["contract_fingerprint"] == contract.contract_fingerprint()
    assert info["metrics"] == {"roc_auc": 0.9}
    assert "manifest" not in info and "files" not in client.get("/model/info").text
    assert client.get("/model/manifest").status_code == 401
    manifest = client.get("/model/manifest", headers=AUTH).json()
    assert manifest["version"] == "v1"
    assert "model.onnx" in manifest["files"]


def test_an_unreachable_storage_is_reported_without_its_endpoint_or_bucket(
    make_client: Callable[..., TestClient], make_settings: Callable[..., ScorerSettings]
) -> None:
    port = free_port()  # nothing listens there: every call is refused
    storage = S3Storage(
        "internal-bucket-name",
        "internal/prefix",
        endpoint_url=f"http://127.0.0.1:{port}",
        max_attempts=1,
        connect_timeout=1,
    )
    client = make_client(create_app(make_settings(), registry_storage=storage))
    for response in (client.get("/ready"), client.post("/predict", json=ROW)):
        assert response.status_code == 503
        detail = response.json()["detail"]
        assert "storage cannot be read" in detail
        for secret in ("internal-bucket-name", "internal/prefix", str(port), "s3://"):
            assert secret not in response.text


def test_a_refused_artifact_is_named_without_its_path(
    make_client: Callable[..., TestClient], registry_root: Path
) -> None:
    onnx = registry_root / layout.version_prefix("accident-severity", "v1") / layout.MODEL_ONNX
    onnx.write_bytes(onnx.read_bytes()[:-10] + b"tampered!!")
    client = make_client()
    response = client.get("/ready")
    assert response.status_code == 503
    assert "model.onnx: sha256" in response.json()["detail"]
    assert str(registry_root) not in response.text and "file://" not in response.text


def test_model_info_is_503_without_a_model(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(registry_uri=str(tmp_path / "empty"))
    assert client.get("/model/info").status_code == 503


def test_stats_count_predictions_since_start(client: TestClient) -> None:
    assert client.get("/stats").json()["predictions"] == 0
    client.post("/predict", json=ROW)
    client.post("/predict/batch", json={"rows": [ROW, ROW]})
    client.post("/predict", json={**ROW, "agg_": 0})  # refused: not counted
    stats = client.get("/stats").json()
    assert stats["predictions"] == 3
    assert sum(stats["by_label"].values()) == 3
    assert set(stats["by_label"]) == {"prioritaire", "non-prioritaire"}
    assert sum(stats["by_confidence"].values()) == 3
    assert set(stats["by_confidence"]) == {"high", "medium", "low"}
    assert stats["by_model_version"] == {"v1": 3}
    assert stats["uptime_seconds"] >= 0


def test_metrics_expose_prediction_and_http_families(client: TestClient) -> None:
    client.post("/predict", json=ROW)
    client.get("/health")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'triage_model_info{runtime="onnxruntime",selection="following",version="v1"} 1.0' in text
    assert "triage_model_loaded 1.0" in text
    assert 'http_requests_total{handler="/predict",method="POST",status="2xx"} 1.0' in text
    assert (
        'http_request_duration_seconds_bucket{handler="/predict",le="0.001",method="POST"}' in text
    )
    assert 'handler="/health"' not in text
    assert 'handler="/metrics"' not in text


def test_unknown_paths_are_404_json_and_grouped_in_metrics(client: TestClient) -> None:
    response = client.get("/wp-admin/anything")
    assert response.status_code == 404
    assert response.json()["request_id"]
    assert client.post("/health").status_code == 405
    text = client.get("/metrics").text
    assert "wp-admin" not in text
    assert 'http_requests_total{handler="none",method="GET",status="4xx"} 1.0' in text


def test_openapi_documents_every_endpoint_with_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path, method in [
        ("/predict", "post"),
        ("/predict/batch", "post"),
        ("/feedback", "post"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/model/info", "get"),
        ("/stats", "get"),
        ("/metrics", "get"),
        ("/model/reload", "post"),
        ("/retrain", "post"),
    ]:
        assert method in paths[path], path
    predict_body = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert predict_body["examples"]["car"]["value"] == ROW
    features = schema["components"]["schemas"]["AccidentFeatures"]
    assert features["additionalProperties"] is False
    assert set(features["required"]) == {f.name for f in contract.FEATURES if f.required}
    assert features["properties"]["agg_"]["enum"] == [1, 2]
    assert features["properties"]["vma"]["anyOf"][0]["maximum"] == 130
    assert "API" in str(schema["components"]["securitySchemes"])


def test_an_unexpected_error_is_a_bare_500_and_a_logged_trace(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    state = client.app.state.scorer  # type: ignore[attr-defined]

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(state.scorer, "score_one", broken)
    with caplog.at_level(logging.ERROR, logger="service.app"):
        response = client.post("/predict", json=ROW, headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error", "request_id": "boom-1"}
    assert "secret" not in response.text
    [record] = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert record.request_id == "boom-1"  # type: ignore[attr-defined]
    assert record.exc_info is not None
    metrics = client.get("/metrics").text
    assert 'http_requests_total{handler="/predict",method="POST",status="5xx"} 1.0' in metrics


def test_scoring_goes_through_the_plain_routes_and_keeps_its_documentation(
    client: TestClient,
) -> None:
    from service.routes.inference import _PlainRoute

    plain = [r for r in client.app.router.routes if isinstance(r, _PlainRoute)]  # type: ignore[attr-defined]
    assert sorted(r.path for r in plain) == ["/predict", "/predict/batch"]
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AccidentFeatures"
    }
    responses = schema["paths"]["/predict"]["post"]["responses"]
    assert set(responses) >= {"200", "400", "413", "422", "503"}
