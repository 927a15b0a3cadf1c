"""The retrain launcher both the scorer and the drift job use (core/retrain.py): the
training command, the claim taken before anything starts and given back when nothing
did, a real local subprocess, and a Job created through the real client against the
fake API server. The roles' policies on top are tested in tests/service and
tests/monitoring."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core import claims, k8s_jobs, layout
from core import retrain as core_retrain
from core.errors import RetrainClaimedError, RetrainError
from core.retrain import RetrainLauncher, RetrainTarget
from core.storage import Storage, open_storage
from tests.fake_kube import FakeKube, training_cronjob

NOW = datetime(2026, 11, 25, 12, 40, tzinfo=UTC)
WINDOW = "20261125T12"
MODEL = "accident-severity"


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return open_storage(str(tmp_path / "registry"))


def _launcher(storage: Storage, tmp_path: Path, **target: Any) -> RetrainLauncher:
    return RetrainLauncher(
        RetrainTarget(registry_uri=storage.uri, model_name=MODEL, **target),
        claim_storage=storage,
        trigger=claims.TRIGGER_DRIFT,
        host="pod-a",
        namespace_file=tmp_path / "no-such-namespace-file",
    )


def _claim_key() -> str:
    return layout.retrain_claim_key(MODEL, WINDOW)


def test_the_training_command_is_the_training_cli_on_the_same_registry() -> None:
    target = RetrainTarget(registry_uri="s3://models/prod/", model_name=MODEL)
    assert core_retrain.training_command(target) == [
        sys.executable,
        "-m",
        "training",
        "train",
        "--registry-uri",
        "s3://models/prod/",
        "--model-name",
        MODEL,
    ]
    with_raw = RetrainTarget(registry_uri="r", model_name=MODEL, raw_uri="synthetic://?accidents=5")
    assert core_retrain.training_command(with_raw)[-2:] == ["--raw-uri", "synthetic://?accidents=5"]


def test_the_training_command_parses_with_the_training_cli() -> None:
    """The flags the launcher passes are the training CLI's (generated from its settings)."""
    from training.cli import build_parser

    target = RetrainTarget(registry_uri="s3://models/prod/", model_name="m", raw_uri="/data")
    args = build_parser().parse_args(core_retrain.training_command(target)[3:])
    assert (args.registry_uri, args.model_name, args.raw_uri) == ("s3://models/prod/", "m", "/data")


def test_the_training_subprocess_does_not_inherit_the_scorer_settings() -> None:
    environ = {"SCORER_API_KEY": "secret", "TRAINING_RAW_URI": "/data", "PATH": "/bin"}
    assert core_retrain.training_environment(environ) == {
        "TRAINING_RAW_URI": "/data",
        "PATH": "/bin",
    }


def test_launch_claims_the_window_then_starts(storage: Storage, tmp_path: Path) -> None:
    launcher = _launcher(storage, tmp_path)
    assert launcher.launch("drift (x)", NOW, lambda: "started") == "started"
    claim = json.loads(storage.read_bytes(_claim_key()))
    assert (claim["trigger"], claim["host"], claim["reason"]) == ("drift", "pod-a", "drift (x)")
    # Another trigger of the window: told who holds it, and its start is never called.
    other = RetrainLauncher(
        launcher.target, claim_storage=storage, trigger=claims.TRIGGER_SCORER_API, host="pod-b"
    )
    calls: list[str] = []
    with pytest.raises(RetrainClaimedError, match="already claimed by drift on pod-a"):
        other.launch("operator", NOW, lambda: calls.append("started"))
    assert calls == []


def test_a_start_that_fails_gives_the_claim_back(storage: Storage, tmp_path: Path) -> None:
    launcher = _launcher(storage, tmp_path)

    def refused() -> str:
        raise RetrainError("read CronJob: HTTP 403: forbidden")

    with pytest.raises(RetrainError, match="403"):
        launcher.launch("drift (x)", NOW, refused)
    assert not storage.exists(_claim_key())
    assert launcher.launch("drift (again)", NOW, lambda: "started") == "started"


def test_a_local_training_runs_and_its_summary_is_read(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = {"status": "trained", "version": "v2", "promoted": True}
    code = f"import json; print(json.dumps({summary!r}))"
    monkeypatch.setattr(core_retrain, "training_command", lambda _: [sys.executable, "-c", code])
    process = _launcher(storage, tmp_path).start_local()
    assert core_retrain.wait_for_training(process, timeout=120) == summary


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("import sys; sys.exit(3)", "local retrain failed with exit code 3"),
        ("import time; time.sleep(600)", r"did not finish within 1 s: killed"),
    ],
)
def test_a_failed_or_overlong_local_training_is_an_error(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, error: str
) -> None:
    monkeypatch.setattr(core_retrain, "training_command", lambda _: [sys.executable, "-c", code])
    process = _launcher(storage, tmp_path).start_local()
    with pytest.raises(RetrainError, match=error):
        core_retrain.wait_for_training(process, timeout=1)
    assert process.returncode is not None  # never left running


def test_a_training_command_that_cannot_start_is_an_error(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "no-such-python")
    monkeypatch.setattr(core_retrain, "training_command", lambda _: [missing])
    launcher = _launcher(storage, tmp_path)
    with pytest.raises(RetrainError, match="cannot start the training command"):
        launcher.launch("drift (x)", NOW, launcher.start_local)
    assert not storage.exists(_claim_key())


def test_the_namespace_is_the_configured_one_else_the_pods(
    storage: Storage, tmp_path: Path
) -> None:
    assert _launcher(storage, tmp_path, namespace="triage").namespace() == "triage"
    launcher = _launcher(storage, tmp_path)
    assert launcher.namespace() is None  # outside a pod
    launcher.namespace_file.write_text("triage-prod\n")
    assert launcher.namespace() == "triage-prod"


def test_a_job_is_created_from_the_cronjob_labelled_with_the_trigger(
    storage: Storage, tmp_path: Path, fake_kube: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_kube.add_cronjob(training_cronjob("triage", "triage-training"))
    monkeypatch.setattr(k8s_jobs, "cluster_api_client", fake_kube.api_client)
    launcher = _launcher(storage, tmp_path, training_cronjob="triage-training")
    name = launcher.launch(
        "drift (x)",
        NOW,
        lambda: launcher.create_job(
            "triage",
            reason="drift (x)",
            labels={"triage/drift-window": WINDOW},
            dedupe_key="drift:x",
        ),
    )
    assert name == launcher.job_name("drift:x")
    (job,) = fake_kube.posted_jobs()
    assert job["metadata"]["labels"]["triage/trigger"] == "drift"
    assert job["metadata"]["labels"]["triage/drift-window"] == WINDOW
    assert job["metadata"]["annotations"]["triage/retrain-reason"] == "drift (x)"
    assert storage.exists(_claim_key())
