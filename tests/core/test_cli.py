"""Command lines generated from the settings models (core/cli.py): for the training,
drift and scorer commands, every setting has the flag of its name, whose help carries
the model's description, its real default and its variable, whose choices are the
enum's; a flag left out leaves the environment's value; a bad choice is one line."""

from __future__ import annotations

import argparse
import enum
import os
import subprocess
import sys
from typing import Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from core import cli
from monitoring.cli import build_parser as monitoring_parser
from monitoring.settings import MonitoringSettings
from service.__main__ import build_parser as scorer_parser
from service.settings import ScorerSettings
from training.cli import build_parser as training_parser
from training.settings import TrainingSettings


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    chosen: argparse.ArgumentParser = commands.choices[name]
    return chosen


COMMANDS: dict[str, tuple[type[BaseSettings], Any]] = {
    "python -m training train": (TrainingSettings, lambda: _subcommand(training_parser(), "train")),
    "python -m monitoring drift": (
        MonitoringSettings,
        lambda: _subcommand(monitoring_parser(), "drift"),
    ),
    "python -m service": (ScorerSettings, scorer_parser),
}


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions}


def _is_secret(settings: type[BaseSettings], field: str) -> bool:
    return SecretStr in getattr(settings.model_fields[field].annotation, "__args__", ())


@pytest.mark.parametrize("command", COMMANDS)
def test_every_setting_has_its_flag_with_the_models_help_default_and_choices(
    command: str,
) -> None:
    settings, parser = COMMANDS[command]
    actions = _flags(parser())
    for field, info in settings.model_fields.items():
        if _is_secret(settings, field):
            assert field not in actions, f"{command}: the secret {field} must have no flag"
            continue
        assert field in actions, f"{command}: no flag for {field}"
        action = actions[field]
        assert cli.flag(field) in action.option_strings
        assert action.default is argparse.SUPPRESS  # a flag left out overrides nothing
        help_text = (action.help or "") % {}
        assert (info.description or "").strip() in help_text, field
        default = info.get_default()
        shown = (
            "unset"
            if default is None
            else default.value
            if isinstance(default, enum.Enum)
            else str(default).lower()
            if isinstance(default, bool)
            else str(default)
        )
        assert f"(default: {shown}; env {cli.env_variable(settings, field)})" in help_text
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            assert action.choices == [member.value for member in annotation], field
        elif annotation is bool:
            assert f"--no-{field.replace('_', '-')}" in action.option_strings


def test_a_flag_left_out_leaves_the_environment_and_a_flag_given_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITORING_MIN_ROWS", "2000")
    monkeypatch.setenv("MONITORING_MAX_CURRENT_ROWS", "60000")
    parser = monitoring_parser()
    from_env = cli.settings_from_args(MonitoringSettings, parser.parse_args(["drift"]))
    assert from_env.min_rows == 2000 and from_env.drift_share == 0.1
    given = parser.parse_args(["drift", "--min-rows", "3000", "--dry-run"])
    settings = cli.settings_from_args(MonitoringSettings, given)
    assert (settings.min_rows, settings.max_current_rows, settings.dry_run) == (3000, 60000, True)
    no = cli.settings_from_args(MonitoringSettings, parser.parse_args(["drift", "--no-dry-run"]))
    assert no.dry_run is False


def test_the_old_short_flags_still_work() -> None:
    args = training_parser().parse_args(["train", "--registry", "s3://b/", "--raw", "/data"])
    settings = cli.settings_from_args(TrainingSettings, args)
    assert (settings.registry_uri, settings.raw_uri) == ("s3://b/", "/data")


@pytest.mark.parametrize(
    ("module", "args", "flag", "choices"),
    [
        (
            "training",
            ["train", "--model-kind", "svm"],
            "--model-kind",
            "'hist-gradient-boosting', 'random-forest', 'logistic-regression', 'majority'",
        ),
        ("training", ["train", "--promote", "always"], "--promote", "'auto', 'never', 'force'"),
        (
            "monitoring",
            ["drift", "--retrain-mode", "sometimes"],
            "--retrain-mode",
            "'local', 'kubernetes', 'disabled'",
        ),
        ("service", ["--retrain-mode", "sometimes"], "--retrain-mode", "'local', 'kubernetes'"),
    ],
)
def test_a_bad_choice_is_one_line_naming_the_flag_and_the_choices(
    module: str, args: list[str], flag: str, choices: str
) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DO_NOT_TRACK": "1"},
    )
    assert completed.returncode == 2
    (line,) = completed.stderr.strip().splitlines()
    assert line.startswith(f"error: argument {flag}: invalid choice: ")
    assert choices in line


def test_a_setting_of_a_type_without_a_flag_is_refused() -> None:
    class Odd(BaseSettings):
        weights: list[float] = [1.0]

    with pytest.raises(TypeError, match="no command-line flag for setting weights"):
        cli.add_settings_arguments(argparse.ArgumentParser(), Odd)
