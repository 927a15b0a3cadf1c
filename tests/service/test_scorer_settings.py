"""ScorerSettings: SCORER_* variables, defaults, and refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.settings import RetrainMode, ScorerSettings


def test_defaults_are_the_embedded_local_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("SCORER_"):
            monkeypatch.delenv(name)
    settings = ScorerSettings()
    assert settings.registry_uri == ".registry"
    assert settings.model_name == "accident-severity"
    assert settings.alias == "production"
    assert settings.poll_interval_seconds == 30
    assert settings.api_key is None
    assert settings.batch_limit == 1000
    assert settings.max_body_bytes == 1_000_000
    assert settings.inference_log_enabled is True
    assert settings.effective_inference_log_uri == ".registry"
    assert settings.retrain_mode is RetrainMode.LOCAL


def test_every_field_is_documented() -> None:
    undocumented = [n for n, f in ScorerSettings.model_fields.items() if not f.description]
    assert undocumented == []


def test_environment_variables_use_the_scorer_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORER_REGISTRY_URI", "s3://models/triage")
    monkeypatch.setenv("SCORER_API_KEY", "k3y")
    monkeypatch.setenv("SCORER_BATCH_LIMIT", "50")
    monkeypatch.setenv("SCORER_INFERENCE_LOG_URI", "s3://logs/triage")
    monkeypatch.setenv("SCORER_RETRAIN_MODE", "kubernetes")
    settings = ScorerSettings()
    assert settings.registry_uri == "s3://models/triage"
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k3y"
    assert "k3y" not in repr(settings)
    assert settings.batch_limit == 50
    assert settings.effective_inference_log_uri == "s3://logs/triage"
    assert settings.retrain_mode is RetrainMode.KUBERNETES


@pytest.mark.parametrize(
    "values",
    [
        {"model_name": "Bad Name"},
        {"alias": "../prod"},
        {"batch_limit": 0},
        {"confidence_high_margin": 0.1, "confidence_medium_margin": 0.2},
        {"inference_log_buffer_rows": 1},
        {"retrain_mode": "sometimes"},
        {"unknown_setting": 1},
    ],
)
def test_unsafe_values_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ScorerSettings(**values)  # type: ignore[arg-type]
