"""Prints ``name==version`` for every distribution the given extras of the project
need, read from the environment this runs in (the project's venv), one per line.

The docker smoke test downloads exactly these wheels, in parallel and without a
resolver run, so the images get the versions the test suite ran against.

    python .ci/wheel_pins.py service training monitoring [requirement ...]

Arguments that are not extras of the project are extra requirements.
"""

from __future__ import annotations

import sys
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "accident-triage"


def requirements_of(dist: metadata.Distribution, extras: set[str]) -> list[Requirement]:
    found = []
    for line in dist.requires or []:
        requirement = Requirement(line)
        if requirement.marker is None:
            found.append(requirement)
            continue
        for extra in extras or {""}:
            environment = {**default_environment(), "extra": extra}
            if requirement.marker.evaluate(environment):  # type: ignore[arg-type]
                found.append(requirement)
                break
    return found


def main(argv: list[str]) -> int:
    project = metadata.distribution(PROJECT)
    extras = {canonicalize_name(e) for e in project.metadata.get_all("Provides-Extra") or []}
    wanted = {canonicalize_name(a) for a in argv}
    queue = requirements_of(project, wanted & extras)
    queue += [Requirement(a) for a in argv if canonicalize_name(a) not in extras]
    pins: dict[str, str] = {}
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if name == PROJECT:
            queue += requirements_of(project, set(requirement.extras))
            continue
        if name in pins:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            print(f"error: {name} is not installed in {sys.prefix}", file=sys.stderr)
            return 1
        pins[name] = dist.version
        queue += requirements_of(dist, set(requirement.extras))
    for name in sorted(pins):
        print(f"{name}=={pins[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
