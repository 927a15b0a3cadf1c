"""scorer.modelVersion: the chart value of SCORER_MODEL_VERSION (rollback by
configuration), rendered only when set and refused by the schema when the registry
would refuse it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from service.settings import ScorerSettings
from tests.helm.chart import Rendered, env_values, name, pod_spec

VERSION = "20261125t193000.481516-1a2b3c4d-5c1d09e2"


def scorer_env(rendered: Rendered) -> dict[str, str | None]:
    return env_values(pod_spec(rendered.get("Deployment", name("scorer")))["containers"][0])


def test_by_default_the_scorer_follows_the_alias(render: Callable[..., Rendered]) -> None:
    env = scorer_env(render("default"))
    assert "SCORER_MODEL_VERSION" not in env
    assert env["SCORER_ALIAS"] == "production"


def test_a_pinned_version_renders_into_the_scorer_environment(
    render: Callable[..., Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = scorer_env(render("default", "--set", f"scorer.modelVersion={VERSION}"))
    assert env["SCORER_MODEL_VERSION"] == VERSION
    # What the scorer then reads from that environment.
    monkeypatch.setenv("SCORER_MODEL_VERSION", VERSION)
    assert ScorerSettings().model_version == VERSION
    # Unpinning is emptying the value: the variable goes away.
    assert "SCORER_MODEL_VERSION" not in scorer_env(
        render("default", "--set", "scorer.modelVersion=")
    )


@pytest.mark.parametrize("bad", ["V1", "v1/x", "-v1"])
def test_the_schema_refuses_a_version_the_registry_would_refuse(
    template: Callable[..., subprocess.CompletedProcess[str]], bad: str
) -> None:
    result = template("--set", f"scorer.modelVersion={bad}")
    assert result.returncode != 0
    assert "scorer.modelVersion: Does not match pattern" in result.stderr, result.stderr
