"""The chart's documentation from one source: the ``# --`` comments of values.yaml.

helm-docs' convention (the prometheus-community charts use it): the comment block just
above a key holds a ``# -- description`` line, continued on the next ``#`` lines, and
optionally ``# @default -- text`` (what the README's Default column says instead of the
value) and a type in front of the description (``# -- (int) ...``). From those comments:

- ``values.schema.json`` gets each description; everything else in it (types, enums,
  bounds, patterns, ``required``, ``additionalProperties``, the shared ``definitions``)
  stays as written by hand. A key under a shared definition (``$ref``) has one
  description for every place that uses it, so those places must say the same thing.
- ``README.md`` is what helm-docs renders from ``README.md.gotmpl``.

    python -m tools.chart_docs              # rewrite both (make chart-docs)
    python -m tools.chart_docs --check      # exit 1 if either is stale

tests/helm/test_chart_docs.py fails when a committed file is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.commands import run_handler

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "accident-triage"
HELM_DOCS = "helm-docs"
HELM_DOCS_INSTALL = "bash .ci/build-go-tools.sh helm-docs"
# The helm-docs version the README is rendered with, pinned with the other Go tools.
VERSIONS = ROOT / ".ci" / "versions.env"
# What helm-docs reads: the template, the chart's metadata and the values.
README_INPUTS = ("Chart.yaml", "values.yaml", "README.md.gotmpl")
# The table follows values.yaml (sections in the order a reader meets them), not the
# alphabet.
HELM_DOCS_ARGS = ("--sort-values-order", "file", "--log-level", "warning")

DESCRIPTION = "# --"
ANNOTATION = "# @"
DEFAULT_NOTE = "# @default --"

KeyPath = tuple[str, ...]


class ChartDocsError(ValueError):
    """values.yaml, the schema or helm-docs cannot give the documentation."""


@dataclass(frozen=True)
class ValueDoc:
    """What the comment above one key of values.yaml says."""

    description: str
    line: int
    """1-based line of the key, for error messages."""
    default_note: str | None = None
    type_hint: str | None = None


def dotted(path: KeyPath) -> str:
    return ".".join(path)


def parse_comment(block: list[str], where: str) -> tuple[str, str | None, str | None] | None:
    """(description, @default note, type) of the comment lines above a key, or None
    when none of them starts with ``# --``. Lines above the ``# --`` line are a
    reader's notes: neither helm-docs nor this reads them."""
    starts = [i for i, line in enumerate(block) if line.startswith(DESCRIPTION)]
    if not starts:
        return None
    if len(starts) > 1:
        raise ChartDocsError(f"{where}: more than one '# --' line above the key")
    parts: list[str] = []
    default_note = None
    for line in block[starts[0] :]:
        if line.startswith(DEFAULT_NOTE):
            default_note = line.removeprefix(DEFAULT_NOTE).strip()
        elif line.startswith(ANNOTATION):
            raise ChartDocsError(f"{where}: unsupported annotation {line.split()[1]!r}")
        elif default_note is not None:
            raise ChartDocsError(f"{where}: the description continues after '# @default --'")
        else:
            parts.append(line.removeprefix(DESCRIPTION if not parts else "#").strip())
    description = " ".join(p for p in parts if p)
    type_hint = None
    if description.startswith("("):
        type_hint, _, description = description[1:].partition(")")
        description = description.strip()
    if not description:
        raise ChartDocsError(f"{where}: '# --' with no description")
    check_readme_safe(description, where)
    return description, default_note, type_hint


def check_readme_safe(description: str, where: str) -> None:
    """What helm-docs would misread or the README garble: the README shows each
    description in a Markdown table cell, as it is, so a ``|`` ends the cell and a
    ``<word>`` outside backticks is an HTML tag that vanishes."""
    if " --" in description:
        # helm-docs reads "# path -- text" as the description of the key at "path".
        raise ChartDocsError(f"{where}: ' --' inside the description confuses helm-docs")
    if "|" in description:
        raise ChartDocsError(f"{where}: '|' would split the README's table row")
    outside_code = description.split("`")[::2]
    if any(re.search(r"<[A-Za-z/!]", text) for text in outside_code):
        raise ChartDocsError(f"{where}: put '<...>' in backticks, or the README hides it")


def value_docs(values_text: str) -> dict[KeyPath, ValueDoc]:
    """The ``# --`` documentation of every key of values.yaml that has one, by path,
    in file order. Keys inside lists are not values of their own."""
    lines = values_text.splitlines()
    root = yaml.compose(values_text)
    docs: dict[KeyPath, ValueDoc] = {}

    def visit(node: yaml.Node, path: KeyPath) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        for key_node, value_node in node.value:
            key_path = (*path, str(key_node.value))
            line = key_node.start_mark.line
            block: list[str] = []
            while line > 0 and lines[line - 1].strip().startswith("#"):
                line -= 1
                block.insert(0, lines[line].strip())
            where = f"values.yaml:{key_node.start_mark.line + 1}: {dotted(key_path)}"
            parsed = parse_comment(block, where)
            if parsed:
                description, default_note, type_hint = parsed
                docs[key_path] = ValueDoc(
                    description, key_node.start_mark.line + 1, default_note, type_hint
                )
            visit(value_node, key_path)

    if root is not None:
        visit(root, ())
    for path, doc in docs.items():
        if doc.default_note is None and not is_whole(path, docs):
            raise ChartDocsError(
                f"values.yaml:{doc.line}: {dotted(path)} is a section (keys inside have "
                f"descriptions): add '{DEFAULT_NOTE} see below' above it, or the README "
                "prints the whole map as its default"
            )
    return docs


def value_units(values: Mapping[str, Any], docs: Mapping[KeyPath, ValueDoc]) -> Iterator[KeyPath]:
    """The paths that are one value each, as helm-docs lists them: scalars, lists, empty
    maps, and maps documented as a whole (``resources``: a description and none on the
    keys inside). The other maps are sections: their keys are the values."""

    def walk(node: Mapping[str, Any], path: KeyPath) -> Iterator[KeyPath]:
        for key, value in node.items():
            key_path = (*path, key)
            if isinstance(value, dict) and value and not is_whole(key_path, docs):
                yield from walk(value, key_path)
            else:
                yield key_path

    yield from walk(values, ())


def is_whole(path: KeyPath, docs: Mapping[KeyPath, ValueDoc]) -> bool:
    """A map documented as one value: described, with no described key inside."""
    return path in docs and not any(p[: len(path)] == path and p != path for p in docs)


# --- values.schema.json ---------------------------------------------------------------


def definition(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    """The node a ``$ref`` points at (only references inside the file), else the node."""
    ref = node.get("$ref")
    if ref is None:
        return node
    if not isinstance(ref, str) or not ref.startswith("#/"):
        raise ChartDocsError(f"values.schema.json: unsupported $ref {ref!r}")
    target: Any = schema
    for part in ref[2:].split("/"):
        target = target[part]
    return definition(schema, target)


def schema_node(schema: Mapping[str, Any], path: KeyPath) -> dict[str, Any]:
    """The schema entry of a value: the node in its parent's ``properties`` (which may be
    a ``$ref``); KeyError when the schema has none."""
    node: Any = schema
    for key in path:
        node = definition(schema, node)["properties"][key]
    if not isinstance(node, dict):
        raise KeyError(dotted(path))
    return node


def strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def schema_with_descriptions(
    schema: Mapping[str, Any], docs: Mapping[KeyPath, ValueDoc]
) -> dict[str, Any]:
    """A copy of the schema whose descriptions are exactly those of values.yaml: a
    description the values do not give is dropped, so none goes stale."""
    result: dict[str, Any] = strip_descriptions(schema)
    written: dict[int, tuple[KeyPath, str]] = {}
    for path, doc in docs.items():
        try:
            node = schema_node(result, path)
        except KeyError:
            raise ChartDocsError(
                f"values.yaml:{doc.line}: {dotted(path)} has no entry in values.schema.json"
            ) from None
        first = written.setdefault(id(node), (path, doc.description))
        if first[1] != doc.description:
            raise ChartDocsError(
                f"values.yaml:{doc.line}: {dotted(path)} and {dotted(first[0])} share one "
                f"schema definition, so they need the same description: "
                f"{doc.description!r} != {first[1]!r}"
            )
        rest = dict(node)
        node.clear()
        node["description"] = doc.description
        node.update(rest)
    return result


def render_schema(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def generated_schema(chart: Path) -> str:
    values_text = (chart / "values.yaml").read_text()
    schema = json.loads((chart / "values.schema.json").read_text())
    return render_schema(schema_with_descriptions(schema, value_docs(values_text)))


# --- README.md --------------------------------------------------------------------------


def helm_docs_binary() -> str:
    found = shutil.which(HELM_DOCS)
    if not found:
        raise ChartDocsError(f"{HELM_DOCS} is not installed ({HELM_DOCS_INSTALL})")
    return found


def pinned_helm_docs_version() -> str:
    found = re.search(r"^HELM_DOCS_VERSION=v?(\S+)$", VERSIONS.read_text(), re.MULTILINE)
    if not found:
        raise ChartDocsError(f"{VERSIONS} has no HELM_DOCS_VERSION")
    return found.group(1)


def check_helm_docs_version(helm_docs: str) -> None:
    """Another helm-docs may render the same comments differently: refuse it, rather
    than call the committed README stale."""
    result = subprocess.run(
        [helm_docs, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    reported = result.stdout.strip()
    wanted = f"helm-docs version {pinned_helm_docs_version()}"
    if reported != wanted:
        raise ChartDocsError(
            f"{helm_docs} says {reported or result.stderr.strip()!r}, .ci/versions.env "
            f"pins {wanted!r} ({HELM_DOCS_INSTALL})"
        )


def generated_readme(chart: Path, helm_docs: str) -> str:
    """helm-docs' README for the chart, rendered in a scratch copy of its inputs so the
    chart folder is only written by the caller."""
    check_helm_docs_version(helm_docs)
    with tempfile.TemporaryDirectory(prefix="chart-docs-") as scratch:
        copy = Path(scratch) / chart.name
        copy.mkdir()
        for name in README_INPUTS:
            shutil.copy2(chart / name, copy / name)
        result = subprocess.run(
            [helm_docs, "--chart-search-root", str(copy), *HELM_DOCS_ARGS],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        readme = copy / "README.md"
        if result.returncode != 0 or not readme.is_file():
            raise ChartDocsError(f"{HELM_DOCS} failed: {result.stderr.strip()}")
        return readme.read_text()


def generated(chart: Path) -> dict[str, str]:
    """File name -> what the chart's generated documentation file should contain."""
    return {
        "values.schema.json": generated_schema(chart),
        "README.md": generated_readme(chart, helm_docs_binary()),
    }


def same_text(path: Path, text: str) -> bool:
    return path.is_file() and path.read_text() == text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.chart_docs",
        description="Write the chart's README.md and the descriptions of "
        "values.schema.json from the '# --' comments of values.yaml.",
    )
    parser.add_argument("--chart", type=Path, default=CHART, help="chart folder")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a file is stale"
    )
    args = parser.parse_args(argv)

    def handler() -> int:
        files = generated(args.chart)
        stale = [name for name, text in files.items() if not same_text(args.chart / name, text)]
        if not stale:
            print(f"up to date: {', '.join(files)}")
            return 0
        if args.check:
            print(f"stale: {', '.join(stale)} (make chart-docs)", file=sys.stderr)
            return 1
        for name in stale:
            (args.chart / name).write_text(files[name])
        print(f"rewrote: {', '.join(stale)}")
        return 0

    return run_handler(handler)


if __name__ == "__main__":
    sys.exit(main())
