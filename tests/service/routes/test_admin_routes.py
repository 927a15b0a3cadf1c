"""POST /model/reload and POST /retrain: the API key, reloads, the retrain modes."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core import contract, k8s_jobs, layout
from core import retrain as core_retrain
from core.errors import RetrainAlreadyActiveError, RetrainError
from core.registry import Registry
from core.storage import FileStorage, Storage, open_storage
from monitoring import retrain
from monitoring.reports import ReportLocation
from monitoring.settings import MonitoringSettings
from service.app import create_app
from service.errors import RetrainLaunchError
from service.metrics import ScorerMetrics
from service.model_holder import ModelHolder
from service.retrain import ApiRetrain
from service.storage_executor import StorageExecutor
from tests.factories import malicious_pickle, publish_pickle_only
from tests.service.helpers import API_KEY, AUTH, wait_for

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
    assert 'triage_model_info{runtime="onnxruntime",selection="following",version="v2"} 1.0' in text
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


@pytest.mark.parametrize("content", [b"{}", b"[]", b'"v2"', b'{"version": null}'])
def test_an_alias_of_the_wrong_shape_is_named_on_reload_and_on_ready(
    make_client: Callable[..., TestClient], registry_root: Path, content: bytes
) -> None:
    client = make_client(api_key=API_KEY)
    pointer = registry_root / layout.alias_key("accident-severity", "production")
    pointer.write_bytes(content)
    response = client.post("/model/reload", headers=AUTH)
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "alias" in detail and ("invalid alias: version" in detail or "JSON object" in detail)
    assert client.post("/predict", json=ROW).json()["model_version"] == "v1"
    # A scorer starting on it is not ready, and says why in the same words.
    fresh = make_client(api_key=API_KEY)
    ready = fresh.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["detail"] in detail


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
        "from core.registry import Registry\n"
        "from core.storage import open_storage\n"
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
    monkeypatch.setattr(core_retrain, "training_command", lambda _: _fake_training(registry_root))
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
        core_retrain, "training_command", lambda _: _fake_training(registry_root, sleep=30)
    )
    client = make_client(api_key=API_KEY, retrain_mode="local")
    assert client.post("/retrain", headers=AUTH).status_code == 202
    second = client.post("/retrain", headers=AUTH)
    assert second.status_code == 409
    assert "already in progress" in second.json()["detail"]
    # Leaving the client shuts the app down, which terminates the sleeping run.


# --- one training per decision: the retrain claim -----------------------------------

DECISION_TIME = datetime(2026, 11, 25, 12, 20, tzinfo=UTC)
WINDOW = "20261125T12"
CLAIM_KEY = layout.retrain_claim_key("accident-severity", WINDOW)


def _ledger_training(ledger: Path) -> list[str]:
    """A training command that only records that it started."""
    code = (
        f"open({str(ledger)!r}, 'a').write('started\\n'); "
        'print(\'{"status": "trained", "version": "v9"}\')'
    )
    return [sys.executable, "-c", code]


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where every training the scorer or the drift job starts writes a line."""
    path = tmp_path / "trainings.log"
    # The one launcher of both roles: one command to replace.
    monkeypatch.setattr(core_retrain, "training_command", lambda _: _ledger_training(path))
    return path


def _pinned(client: TestClient) -> ApiRetrain:
    launcher: ApiRetrain = client.app.state.scorer.retrain  # type: ignore[attr-defined]
    launcher.clock = lambda: DECISION_TIME
    return launcher


def _drift_retrain(registry: Storage, reports: Storage) -> dict[str, Any]:
    settings = MonitoringSettings(registry_uri=registry.uri, retrain_mode="local")
    return retrain.execute(
        retrain.RetrainDecision(True, "drift (test)"),
        settings,
        report_storage=reports,
        claim_storage=registry,
        location=ReportLocation.for_run(reports, DECISION_TIME),
        window_end=DECISION_TIME,
        now=DECISION_TIME,
    )


STORAGES = ["file", pytest.param("seaweedfs", marks=[pytest.mark.servers, pytest.mark.seaweedfs])]


@pytest.fixture(params=STORAGES)
def shared_registry(request: pytest.FixtureRequest, registry_root: Path) -> Storage:
    """The registry the scorer serves from and the drift job claims in: the test's
    folder, or the same files copied into a SeaweedFS bucket."""
    if request.param == "file":
        return open_storage(str(registry_root))
    storage = open_storage(request.getfixturevalue("s3_bucket"))
    source = FileStorage(registry_root)
    for key in source.list():
        storage.write_bytes(key, source.read_bytes(key))
    return storage


def test_drift_and_post_retrain_racing_in_one_window_start_one_training(
    make_client: Callable[..., TestClient],
    make_settings: Callable[..., Any],
    shared_registry: Storage,
    tmp_path: Path,
    ledger: Path,
) -> None:
    settings = make_settings(api_key=API_KEY, retrain_mode="local")
    client = make_client(create_app(settings, registry_storage=shared_registry))
    launcher = _pinned(client)
    reports = open_storage(str(tmp_path / "reports"))
    barrier = threading.Barrier(2)
    outcome: dict[str, Any] = {}

    def post() -> None:
        barrier.wait(timeout=30)
        outcome["api"] = client.post("/retrain", headers=AUTH, json={"reason": "operator"})

    def drift() -> None:
        barrier.wait(timeout=30)
        try:
            outcome["drift"] = _drift_retrain(open_storage(shared_registry.uri), reports)
        except Exception as error:  # an assert in the thread would not fail the test
            outcome["drift"] = error

    threads = [threading.Thread(target=post), threading.Thread(target=drift)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    api, drifted = outcome["api"], outcome["drift"]
    assert isinstance(drifted, dict), drifted
    claim = json.loads(shared_registry.read_bytes(CLAIM_KEY))
    if api.status_code == 202:
        assert claim["trigger"] == "scorer-api" and claim["reason"] == "operator"
        assert drifted["triggered"] is False and "training" not in drifted
        assert f"already claimed by scorer-api on {claim['host']}" in drifted["reason"]
        wait_for(lambda: launcher.last_exit_code is not None)
    else:
        assert api.status_code == 409, api.text
        assert claim["trigger"] == "drift"
        assert drifted["triggered"] is True
        assert "already claimed by drift on " in api.json()["detail"]
    assert ledger.read_text().splitlines() == ["started"]


def test_post_retrain_after_a_drift_retrain_of_the_window_is_409_naming_it(
    make_client: Callable[..., TestClient],
    registry_root: Path,
    tmp_path: Path,
    ledger: Path,
) -> None:
    registry = open_storage(str(registry_root))
    assert _drift_retrain(registry, open_storage(str(tmp_path / "reports")))["triggered"]
    for mode in ("local", "kubernetes"):
        client = make_client(api_key=API_KEY, retrain_mode=mode, namespace="triage")
        _pinned(client)
        response = client.post("/retrain", headers=AUTH)
        assert response.status_code == 409
        detail = response.json()["detail"]
        assert detail.startswith(
            "the retrain of model accident-severity for decision window 20261125T12 (UTC "
            "hour) was already claimed by drift on "
        )
        assert detail.endswith("(drift (test))")
    assert ledger.read_text().splitlines() == ["started"]


def test_a_retrain_that_could_not_start_gives_its_claim_back(
    make_client: Callable[..., TestClient], registry_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([RetrainError("read CronJob: HTTP 403: forbidden"), "training-manual-abc12"])

    def create_job_from_cronjob(*args: Any, **kwargs: Any) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(k8s_jobs, "create_job_from_cronjob", create_job_from_cronjob)
    client = make_client(api_key=API_KEY, retrain_mode="kubernetes", namespace="triage")
    _pinned(client)
    assert client.post("/retrain", headers=AUTH).status_code == 503
    assert not (registry_root / CLAIM_KEY).exists()
    assert client.post("/retrain", headers=AUTH).status_code == 202
    claim = json.loads((registry_root / CLAIM_KEY).read_text())
    assert claim["trigger"] == "scorer-api" and claim["window"] == WINDOW
    # A third request of the window: the claim holds, whichever replica asks.
    third = client.post("/retrain", headers=AUTH)
    assert third.status_code == 409
    assert "already claimed by scorer-api on " in third.json()["detail"]


def test_a_retrain_that_cannot_be_claimed_starts_nothing(
    make_client: Callable[..., TestClient],
    registry_root: Path,
    ledger: Path,
) -> None:
    # A file where the claims folder should be: every claim write fails.
    (registry_root / layout.RETRAIN_CLAIMS_PREFIX.rstrip("/")).write_text("in the way")
    client = make_client(api_key=API_KEY, retrain_mode="local")
    response = client.post("/retrain", headers=AUTH)
    assert response.status_code == 503
    assert response.json()["detail"] == (
        "cannot claim the retrain: the model storage failed (see the scorer's log)"
    )
    assert not ledger.exists()
    assert 'triage_retrain_requests_total{result="rejected"} 1.0' in client.get("/metrics").text


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
        namespace="triage",
        training_cronjob="triage-training",
    )
    response = client.post("/retrain", headers=AUTH, json={"reason": "drift detected"})
    assert response.status_code == 202
    assert response.json()["mode"] == "kubernetes"
    assert response.json()["run"] == "training-manual-abc12"
    assert response.json()["detail"].endswith("picked up by the next alias poll")
    [(args, kwargs)] = calls
    assert args == ("triage", "triage-training")
    assert kwargs["reason"] == "drift detected"
    assert kwargs["labels"] == {"triage/trigger": "scorer-api"}
    assert set(kwargs["annotations"]) == {"triage/requested-by"}


def test_a_pinned_scorer_says_it_will_not_serve_what_the_retrain_promotes(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(k8s_jobs, "create_job_from_cronjob", lambda *_, **__: "training-x")
    # The message of a following scorer ("picked up by the next alias poll") is in
    # test_retrain_kubernetes_mode_creates_a_job_from_the_cronjob.
    pinned = make_client(
        api_key=API_KEY, retrain_mode="kubernetes", namespace="triage", model_version="v1"
    )
    answer = pinned.post("/retrain", headers=AUTH, json={"reason": "b"}).json()
    assert "pinned to v1 (SCORER_MODEL_VERSION) and will not serve" in answer["detail"]


def test_retrain_kubernetes_mode_maps_a_running_job_to_409(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    def create_job_from_cronjob(*args: Any, **kwargs: Any) -> str:
        raise RetrainAlreadyActiveError("Job triage/t-1 is still active", job_name="t-1")

    monkeypatch.setattr(k8s_jobs, "create_job_from_cronjob", create_job_from_cronjob)
    client = make_client(api_key=API_KEY, retrain_mode="kubernetes", namespace="triage")
    response = client.post("/retrain", headers=AUTH)
    assert response.status_code == 409
    assert "still active" in response.json()["detail"]


def test_retrain_kubernetes_failure_is_503(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    def create_job_from_cronjob(*args: Any, **kwargs: Any) -> str:
        raise RetrainError("read CronJob: HTTP 403: cronjobs.batch is forbidden")

    monkeypatch.setattr(k8s_jobs, "create_job_from_cronjob", create_job_from_cronjob)
    client = make_client(api_key=API_KEY, retrain_mode="kubernetes", namespace="triage")
    response = client.post("/retrain", headers=AUTH)
    assert response.status_code == 503
    assert "forbidden" in response.json()["detail"]


def test_retrain_kubernetes_mode_outside_a_pod_names_the_setting(
    make_settings: Callable[..., Any], tmp_path: Path
) -> None:
    settings = make_settings(retrain_mode="kubernetes")
    executor = StorageExecutor(1)
    holder = ModelHolder(
        Registry(FileStorage(tmp_path / "registry"), "accident-severity"),
        "production",
        ScorerMetrics(),
        executor,
    )
    namespace_file = tmp_path / "namespace"
    api = ApiRetrain(
        settings,
        holder,
        ScorerMetrics(),
        storage_executor=executor,
        host="h",
        namespace_file=namespace_file,
    )
    with pytest.raises(RetrainLaunchError, match="set SCORER_NAMESPACE"):
        api.namespace()
    namespace_file.write_text("triage-prod\n")
    assert api.namespace() == "triage-prod"
