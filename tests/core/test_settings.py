"""One vocabulary (core/settings.py): a setting that two roles share has one name,
one type and one description in both; the roles' defaults may differ."""

from __future__ import annotations

from itertools import combinations

import pytest
from pydantic_settings import BaseSettings

from monitoring.settings import MonitoringSettings
from service.settings import ScorerSettings
from training.settings import TrainingSettings

ROLES: list[type[BaseSettings]] = [ScorerSettings, MonitoringSettings, TrainingSettings]
# Shared names whose description rightly says what the setting does in that role.
ROLE_DESCRIPTIONS = {
    "retrain_mode": "POST /retrain answers a request; the drift job acts on its decision",
    "namespace": "the drift job also labels its pushed metrics with it",
    "inference_log_uri": "the scorer writes the log, the drift and training jobs read it",
}


@pytest.mark.parametrize(
    ("first", "second"), list(combinations(ROLES, 2)), ids=lambda c: c.__name__
)
def test_a_setting_shared_by_two_roles_is_defined_once(
    first: type[BaseSettings], second: type[BaseSettings]
) -> None:
    for name in set(first.model_fields) & set(second.model_fields):
        a, b = first.model_fields[name], second.model_fields[name]
        assert a.annotation == b.annotation, name
        assert a.metadata == b.metadata, name  # constraints and validators
        if name not in ROLE_DESCRIPTIONS:
            assert a.description == b.description, name


def test_the_shared_vocabulary() -> None:
    """The names the issue found spelled two ways are spelled one way."""
    for settings in ROLES:
        fields = set(settings.model_fields)
        assert not fields & {"storage_max_attempts", "retrain_cronjob", "retrain_namespace"}
        assert "storage_attempts" in fields
    for settings in (ScorerSettings, MonitoringSettings):
        assert {"training_cronjob", "training_raw_uri", "training_timeout_seconds"} <= set(
            settings.model_fields
        )
        assert {"retrain_mode", "namespace"} <= set(settings.model_fields)
    assert (
        ScorerSettings.model_fields["retrain_mode"].annotation
        is MonitoringSettings.model_fields["retrain_mode"].annotation
    )
