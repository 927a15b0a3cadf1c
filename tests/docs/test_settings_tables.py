"""The settings tables of the docs against the settings classes: every field of the
scorer's, the drift job's and the training job's settings is in its page's table,
nothing else is, and the default the table shows is the field's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from core.cli import default_text, env_variable
from monitoring.settings import MonitoringSettings
from service.settings import ScorerSettings
from training.settings import TrainingSettings

DOCS = Path(__file__).resolve().parents[2] / "docs"
# (page, heading of the section holding the table, settings class)
TABLES = [
    ("scorer.md", "### Settings", ScorerSettings),
    ("drift.md", "## Settings (`MONITORING_*`)", MonitoringSettings),
    ("training.md", "## Settings (`TRAINING_*`)", TrainingSettings),
]
# How a page may show an unset default: by what the setting then falls back to.
UNSET = {"unset", "the registry's", "registry's", "the pod's", "now", "method's", "chosen"}


def settings_table(page: str, heading: str) -> list[list[str]]:
    """The rows (cells, backticks removed) of the first table after ``heading``."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip().replace("`", "") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if set("".join(cells)) <= set("-: "):
            continue  # the separator row
        rows.append(cells)
    return rows[1:]  # without the header


def documented_defaults(page: str, heading: str, settings: type[BaseSettings]) -> dict[str, str]:
    """field -> default shown, for every setting the table names (``A / B`` rows name
    two, with two defaults)."""
    prefix = env_variable(settings, "")
    found: dict[str, str] = {}
    for cells in settings_table(page, heading):
        names = [n.strip() for n in cells[0].split(" / ")]
        defaults = [d.strip() for d in cells[1].split(" / ")]
        if len(defaults) != len(names):
            defaults = defaults * len(names) if len(defaults) == 1 else defaults
        assert len(defaults) == len(names), f"{page}: {cells[0]} / {cells[1]}"
        for name, default in zip(names, defaults, strict=True):
            field = name.removeprefix(prefix).lower()
            assert field not in found, f"{page}: {name} twice"
            found[field] = default
    return found


def same_default(info: FieldInfo, shown: str) -> bool:
    expected = default_text(info)
    if expected == "unset":
        return shown in UNSET
    if shown == expected:
        return True
    try:
        return float(shown.replace(",", "")) == float(expected)
    except ValueError:
        return False


@pytest.mark.parametrize(("page", "heading", "settings"), TABLES, ids=[t[0] for t in TABLES])
def test_the_settings_table_is_the_settings_class(
    page: str, heading: str, settings: type[BaseSettings]
) -> None:
    documented = documented_defaults(page, heading, settings)
    fields = settings.model_fields
    assert sorted(set(fields) - set(documented)) == [], f"{page}: undocumented settings"
    assert sorted(set(documented) - set(fields)) == [], f"{page}: no such settings"
    wrong = {
        field: (shown, default_text(fields[field]))
        for field, shown in documented.items()
        if not same_default(fields[field], shown)
    }
    assert wrong == {}, f"{page}: (shown, real) defaults differ"


def test_a_wrong_default_in_a_table_is_caught() -> None:
    """The comparison itself: the issue's example, a 500 shown for a 1,000."""
    info = MonitoringSettings.model_fields["min_rows"]
    assert same_default(info, "1000") and same_default(info, "1,000")
    assert not same_default(info, "500")
    assert not same_default(MonitoringSettings.model_fields["report_uri"], "0")
