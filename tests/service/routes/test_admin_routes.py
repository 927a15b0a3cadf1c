"""POST /model/reload and POST /retrain: the API key, reloads, the retrain modes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from monitoring import k8s_jobs
from monitoring.errors import RetrainAlreadyActiveError, RetrainError
from service.errors import RetrainLaunchError
from service.metrics import ScorerMetrics
from service.retrain import RetrainLauncher
from tests.factories import malicious_pickle, publish_pickle_only
from tests.service.helpers import API_KEY, AUTH, wait_for
from training import contract, layout
from training.registry import Registry

ROW = contract.example_row()


@pytest.mark.parametrize("path", ["/model/reload", "/retrain"])
def test_admin_endpoints_are_disabled_without_a_configured_key(
    make_client: Callable[..., TestClient], path: str
) -> None:
    client = make_client()
    response = client.post(path, headers=AUTH)
    assert response.status_code == 403
    assert "SCORER_API_KEY" in response.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": API_KEY + "x"}])
@pytest.mark.parametrize("path", ["/model/reload", "/retrain"])
def test_admin_endpoints_need_the_right_key(
    client: TestClient, path: str, headers: dict[str, str]
) -> None:
    response = client.post(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "ApiKey"
    assert API_KEY not in response.text


def test_blank_key_setting_means_disabled(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_key="  ")
    assert client.post("/model/reload", headers={"X-API-Key": "  "}).status_code == 403


def test_reload_without_a_new_version_is_unchanged(client: TestClient) -> None:
    response = client.post("/model/reload", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["status"] == "unchanged"
    assert response.json()["version"] == "v1"


def test_reload_swaps_to_the_promoted_version(client: TestClient, registry: Registry) -> None:
    before = client.post("/predict", json=ROW).json()
    registry.promote("v2", reason="test")
    response = client.post("/model/reload", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["status"] == "loaded"
    assert response.json()["version"] == "v2"
    assert response.json()["previous_version"] == "v1"
    assert response.json()["load_seconds"] > 0
    after = client.post("/predict", json=ROW).json()
    assert (before["model_version"], after["model_version"]) == ("v1", "v2")
    text = client.get("/metrics").text
    assert 'triage_model_info{runtime="onnxruntime",version="v2"} 1.0' in text
    assert 'version="v1"' not in text.split("# TYPE triage_model_info gauge")[1].split("# HELP")[0]
    assert 'triage_model_reloads_total{result="success"} 2.0' in text


def test_a_version_without_onnx_is_refused_unpickled_and_ready_says_why(
    client: TestClient, registry: Registry, tmp_path: Path
) -> None:
    marker = tmp_path / "pickle-ran"
    publish_pickle_only(registry, "v3", malicious_pickle(marker))
    response = client.post("/model/reload", headers=AUTH)
    assert response.status_code == 503
    assert "no ONNX twin" in response.json()["detail"]
    assert "still serving v1" in response.json()["detail"]
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["model_version"] == "v1"
    assert "no ONNX twin" in ready["detail"]
    assert client.post("/predict", json=ROW).json()["model_version"] == "v1"
    assert not marker.exists()


def test_a_fresh_scorer_refuses_a_pickle_only_version(
    make_client: Callable[..., TestClient], registry: Registry, tmp_path: Path
) -> None:
    marker = tmp_path / "pickle-ran"
    publish_pickle_only(registry, "v3", malicious_pickle(marker))
    client = make_client()
    response = client.get("/ready")
    assert response.status_code == 503
    assert "no ONNX twin" in response.json()["detail"]
    assert client.post("/predict", json=ROW).status_code == 503
    assert not marker.exists()


def test_a_corrupted_version_is_refused_and_the_old_one_kept(
    client: TestClient, registry: Registry, registry_root: Path
) -> None:
    onnx = registry_root / layout.version_prefix("accident-severity", "v2") / layout.MODEL_ONNX
    onnx.write_bytes(onnx.read_bytes()[:-10] + b"tampered!!")
    registry.promote("v2", reason="test")
    response = client.post("/model/reload", headers=AUTH)
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "sha256" in detail
    assert "still serving v1" in detail
    assert client.post("/predict", json=ROW).json()["model_version"] == "v1"
    assert client.get("/ready").status_code == 200
    assert 'triage_model_reloads_total{result="failure"} 1.0' in client.get("/metrics").text


def test_a_version_of_another_contract_is_refused(
    client: TestClient, registry: Registry, registry_root: Path
) -> None:
    manifest = registry_root / layout.version_prefix("accident-severity", "v2") / layout.MANIFEST
    text = manifest.read_text()
    manifest.write_text(text.replace('"contract_fingerprint": "', '"contract_fingerprint": "0'))
    pointer = registry_root / layout.alias_key("accident-severity", "production")
    pointer.write_text(pointer.read_text().replace('"v1"', '"v2"'))
    response = client.post("/model/reload", headers=AUTH)
    assert response.status_code == 503
    assert "feature contract" in response.json()["detail"]
    assert client.get("/ready").json()["model_version"] == "v1"


def test_retrain_disabled_mode_refuses(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_key=API_KEY, retrain_mode="disabled")
    response = client.post("/retrain", headers=AUTH)
    assert response.status_code == 403
    assert "disabled" in response.json()["detail"]
    assert 'triage_retrain_requests_total{result="rejected"} 1.0' in client.get("/metrics").text


def _fake_training(registry_root: Path, version: str = "v2", sleep: float = 0.0) -> list[str]:
    """Stands for `python -m training train`: promotes an already published version
    (the real command's output, minus the minutes of training)."""
    script = (
        "import json, sys, time\n"
        "from training.registry import Registry\n"
        "from training.storage import open_storage\n"
        f"time.sleep({sleep})\n"
        f"Registry(open_storage({str(registry_root)!r}), 'accident-severity')"
        f".promote({version!r}, reason='retrain test')\n"
        f"print(json.dumps({{'status': 'trained', 'version': {version!r}, 'promoted': True}}))\n"
    )
    return [sys.executable, "-c", script]


def test_retrain_local_mode_runs_training_then_serves_the_new_version(
    make_client: Callable[..., TestClient],
    registry_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RetrainLauncher, "command", lambda self: _fake_training(registry_root))
    client = make_client(api_key=API_KEY, retrain_mode="local")
    response = client.post("/retrain", headers=AUTH, json={"reason": "new labels"})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted"
    assert body["mode"] == "local"
    assert body["run"].isdigit()
    wait_for(lambda: client.get("/ready").json()["model_version"] == "v2")
    assert client.post("/predict", json=ROW).json()["model_version"] == "v2"
    assert 'triage_retrain_requests_total{result="accepted"} 1.0' in client.get("/metrics").text


def test_retrain_local_mode_refuses_a_second_concurrent_run(
    make_client: Callable[..., TestClient],
    registry_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        RetrainLauncher, "command", lambda self: _fake_training(registry_root, sleep=30)
    )
    client = make_client(api_key=API_KEY, retrain_mode="local")
    assert client.post("/retrain", headers=AUTH).status_code == 202
    second = client.post("/retrain", headers=AUTH)
    assert second.status_code == 409
    assert "already in progress" in second.json()["detail"]
    # Leaving the client shuts the app down, which terminates the sleeping run.


def test_retrain_local_command_is_the_training_cli(make_settings: Callable[..., Any]) -> None:
    settings = make_settings(retrain_raw_uri="synthetic://?accidents=500")
    launcher = RetrainLauncher(settings, None, ScorerMetrics(), host="h")  # type: ignore[arg-type]
    assert launcher.command() == [
        sys.executable,
        "-m",
        "training",
        "train",
        "--registry",
        settings.registry_uri,
        "--model-name",
        "accident-severity",
        "--raw",
        "synthetic://?accidents=500",
    ]


def test_retrain_kubernetes_mode_creates_a_job_from_the_cronjob(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def create_job_from_cronjob(*args: Any, **kwargs: Any) -> str:
        calls.append((args, kwargs))
        return "training-manual-abc12"

    # The real function is tested against a fake API server in tests/monitoring.
    monkeypatch.setattr(k8s_jobs, "create_job_from_cronjob", create_job_from_cronjob)
    client = make_client(
        api_key=API_KEY,
        retrain_mode="kubernetes",
        retrain_namespace="triage",
        retrain_cronjob="triage-training",
    )
    response = client.post("/retrain", headers=AUTH, json={"reason": "drift detected"})
    assert response.status_code == 202
    assert response.json()["mode"] == "kubernetes"
    assert response.json()["run"] == "training-manual-abc12"
    [(args, kwargs)] = calls
    assert args == ("triage", "triage-training")
    assert kwargs["reason"] == "drift detected"
    assert kwargs["labels"] == {"triage/trigger": "scorer-api"}
    assert set(kwargs["annotations"]) == {"triage/requested-by"}


def test_retrain_kubernetes_mode_maps_a_running_job_to_409(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    def create_job_from_cronjob(*args: Any, **kwargs: Any) -> str:
        raise RetrainAlreadyActiveError("Job triage/t-1 is still active", job_name="t-1")

    monkeypatch.setattr(k8s_jobs, "create_job_from_cronjob", create_job_from_cronjob)
    client = make_client(api_key=API_KEY, retrain_mode="kubernetes", retrain_namespace="triage")
    response = client.post("/retrain", headers=AUTH)
    assert response.status_code == 409
    assert "still active" in response.json()["detail"]


def test_retrain_kubernetes_failure_is_503(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    def create_job_from_cronjob(*args: Any, **kwargs: Any) -> str:
        raise RetrainError("read CronJob: HTTP 403: cronjobs.batch is forbidden")

    monkeypatch.setattr(k8s_jobs, "create_job_from_cronjob", create_job_from_cronjob)
    client = make_client(api_key=API_KEY, retrain_mode="kubernetes", retrain_namespace="triage")
    response = client.post("/retrain", headers=AUTH)
    assert response.status_code == 503
    assert "forbidden" in response.json()["detail"]


def test_retrain_kubernetes_namespace_comes_from_the_pod(
    make_settings: Callable[..., Any], tmp_path: Path
) -> None:
    settings = make_settings(retrain_mode="kubernetes")
    namespace_file = tmp_path / "namespace"
    launcher = RetrainLauncher(
        settings,
        None,  # type: ignore[arg-type]
        ScorerMetrics(),
        host="h",
        namespace_file=namespace_file,
    )
    with pytest.raises(RetrainLaunchError, match="SCORER_RETRAIN_NAMESPACE"):
        launcher.namespace()
    namespace_file.write_text("triage-prod\n")
    assert launcher.namespace() == "triage-prod"
