"""The chart's documentation has one source, the ``# --`` comments of values.yaml
(tools/chart_docs.py): the committed README.md and the schema's descriptions are what
the comments give, every value has a description and a schema entry and the other way
round, and the schema's shared definitions still refuse bad values."""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.helm.chart import CHART, chart_values
from tools import chart_docs
from tools.chart_docs import ChartDocsError, KeyPath, ValueDoc

Template = Callable[..., subprocess.CompletedProcess[str]]


def docs() -> dict[KeyPath, ValueDoc]:
    return chart_docs.value_docs((CHART / "values.yaml").read_text())


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def assert_same(name: str, committed: str, generated: str) -> None:
    diff = "".join(
        list(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                generated.splitlines(keepends=True),
                f"committed {name}",
                f"generated {name}",
            )
        )[:40]
    )
    assert committed == generated, f"helm/accident-triage/{name} is stale: make chart-docs\n{diff}"


# --- the committed files are what the comments give ----------------------------------


def test_schema_descriptions_are_generated_from_the_values_comments() -> None:
    name = "values.schema.json"
    assert_same(name, (CHART / name).read_text(), chart_docs.generated_schema(CHART))


def test_readme_is_generated_from_the_values_comments(helm_docs: str) -> None:
    name = "README.md"
    assert_same(name, (CHART / name).read_text(), chart_docs.generated_readme(CHART, helm_docs))


def test_a_changed_comment_makes_both_files_stale(helm_docs: str, tmp_path: Path) -> None:
    """The two tests above can fail: one edited description changes both outputs."""
    chart = tmp_path / CHART.name
    shutil.copytree(CHART, chart)
    values = chart / "values.yaml"
    old = "# -- Seconds the test waits for /ready."
    assert old in values.read_text()
    values.write_text(values.read_text().replace(old, "# -- Seconds until the test gives up."))
    readme = chart_docs.generated_readme(chart, helm_docs)
    assert "Seconds until the test gives up." in readme
    assert readme != (CHART / "README.md").read_text()
    generated = json.loads(chart_docs.generated_schema(chart))
    node = chart_docs.schema_node(generated, ("tests", "readyTimeoutSeconds"))
    assert node["description"] == "Seconds until the test gives up."


def test_the_readme_table_and_the_schema_read_the_comments_alike() -> None:
    """helm-docs and tools/chart_docs.py parse the same comments: every README row has
    the description the schema gets, and there is a row for each described key."""
    rows: dict[str, str] = {}
    readme = (CHART / "README.md").read_text()
    table = readme.split("| Key | Type | Default | Description |", 1)[1].split("\n\n", 1)[0]
    for line in table.strip().splitlines()[1:]:
        cells = line.strip().removeprefix("|").removesuffix("|").split("|")
        assert len(cells) == 4, f"a README row does not have 4 cells: {line}"
        rows[cells[0].strip()] = cells[3].strip()
    expected = {chart_docs.dotted(path): doc.description for path, doc in docs().items()}
    assert rows == expected


def test_the_package_ships_the_readme_not_its_template(helm: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [helm, "package", str(CHART), "--destination", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("accident-triage-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert "accident-triage/README.md" in names
    assert "accident-triage/README.md.gotmpl" not in names


# --- every value has a description and a schema entry, and the other way round --------


def test_every_value_has_a_description() -> None:
    described = docs()
    missing = [
        chart_docs.dotted(path)
        for path in chart_docs.value_units(chart_values(), described)
        if path not in described
    ]
    assert not missing, f"values.yaml: no '# --' description above {missing}"


def test_values_and_schema_have_the_same_keys() -> None:
    """Down to each value (a map documented as a whole is one value): the schema has
    an entry for every key of values.yaml, no entry without a default, and refuses
    unknown keys at every level it describes key by key."""
    full = schema()
    described = docs()

    def walk(values: Mapping[str, Any], node: Mapping[str, Any], path: KeyPath) -> None:
        where = chart_docs.dotted(path) or "the root"
        target = chart_docs.definition(full, node)
        properties = target.get("properties", {})
        assert set(values) == set(properties), (
            f"{where}: only in values.yaml {sorted(set(values) - set(properties))}, "
            f"only in values.schema.json {sorted(set(properties) - set(values))}"
        )
        assert target.get("additionalProperties") is False, f"{where} accepts unknown keys"
        for key, value in values.items():
            key_path = (*path, key)
            if isinstance(value, dict) and value and not chart_docs.is_whole(key_path, described):
                walk(value, properties[key], key_path)
            else:
                assert properties[key].get("description"), (
                    f"{chart_docs.dotted(key_path)} has no description in values.schema.json"
                )

    walk(chart_values(), full, ())


def test_every_shared_definition_is_used_and_every_reference_resolves() -> None:
    full = schema()
    jsonschema.Draft7Validator.check_schema(full)
    text = (CHART / "values.schema.json").read_text()
    for name in full["definitions"]:
        assert f'"#/definitions/{name}"' in text, f"definitions.{name} is used nowhere"

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(full):
        chart_docs.definition(full, {"$ref": ref})


# --- the shared definitions refuse what the repeated blocks refused --------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("grafana.image.pullPolicy=Sometimes", "grafana.image.pullPolicy must be one of"),
        ("jobsImage.digest=latest", "jobsImage.digest: Does not match pattern"),
        ("seaweedfs.image.tg=1", "seaweedfs.image: Additional property tg is not allowed"),
        ("drift.resources.request.cpu=1", "drift.resources: Additional property request"),
        ("scorer.affinity.nodeAfinity.x=1", "scorer.affinity: Additional property nodeAfinity"),
        ("prometheus.tolerations[0].efect=NoSchedule", "Additional property efect"),
        ("training.serviceAccount.create=yes", "training.serviceAccount.create: Invalid type"),
        ("scorer.probes.liveness.periodSeconds=0", "periodSeconds: Must be greater than"),
        ("grafana.service.nodePort=80", "grafana.service.nodePort: Must be greater than"),
    ],
)
def test_shared_definitions_refuse_bad_values(
    template: Template, settings: str, message: str
) -> None:
    result = template("--set", settings)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# --- the tool's own refusals ------------------------------------------------------------


@pytest.mark.parametrize(
    ("values_text", "message"),
    [
        ("# -- A.\n# -- B.\na: 1\n", "more than one '# --' line"),
        ("# -- a | b\na: 1\n", "'|' would split"),
        ("# -- Under `helm install --timeout`.\na: 1\n", "' --' inside the description"),
        ("# -- Its name: <fullname>.\na: 1\n", "put '<...>' in backticks"),
        ("# -- A section.\na:\n  # -- B.\n  b: 1\n", "a is a section"),
        ("# -- A.\n# @raw\na: 1\n", "unsupported annotation"),
    ],
)
def test_comments_the_readme_would_garble_are_refused(values_text: str, message: str) -> None:
    with pytest.raises(ChartDocsError, match=message):
        chart_docs.value_docs(values_text)


def test_keys_of_one_definition_need_one_description() -> None:
    values_text = "a:\n  # -- Tag of a.\n  tag: x\nb:\n  # -- Tag of b.\n  tag: y\n"
    tag = {"type": "object", "properties": {"tag": {"type": "string"}}}
    shared = {
        "definitions": {"image": tag},
        "properties": {"a": {"$ref": "#/definitions/image"}, "b": {"$ref": "#/definitions/image"}},
    }
    shared_message = re.escape("b.tag and a.tag share one schema definition")
    with pytest.raises(ChartDocsError, match=shared_message):
        chart_docs.schema_with_descriptions(shared, chart_docs.value_docs(values_text))
    with pytest.raises(ChartDocsError, match=re.escape("c has no entry in values.schema.json")):
        chart_docs.schema_with_descriptions(shared, chart_docs.value_docs("# -- C.\nc: 1\n"))
