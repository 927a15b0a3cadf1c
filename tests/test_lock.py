"""The lock files in requirements/ agree with pyproject.toml, offline.

`make lock` writes them (uv pip compile --generate-hashes); `make venv`, the Dockerfile
and the Docker smoke test's wheelhouse install from them. A change to the dependencies
in pyproject.toml without `make lock` fails here instead of installing something the
tests never ran against.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements"
PROJECT = "accident-triage"
BUILD_INPUT = "requirements/build.in"
# The platform the locks are compiled for (`make lock`): the images' Python and OS.
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
# lock -> the extras it installs (None: every extra); the build lock holds only the
# build backend, the dev lock holds it too.
LOCKS: dict[str, set[str] | None] = {
    "dev": None,
    "scorer": {"service"},
    "jobs": {"training", "monitoring"},
    "build": set(),
}


@dataclass
class Pin:
    version: Version
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock(name: str) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    # Continuation lines joined; comments (uv's "# via" annotations) kept per pin.
    text = (REQUIREMENTS / f"{name}.lock").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            via = re.sub(r"^#\s*(via)?\s*", "", stripped)
            if current is not None and via:
                current.via.append(via)
            continue
        if not stripped:
            continue
        requirement, *options = stripped.split(" --")
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", requirement.strip())
        assert match, f"{name}.lock: not an exact pin: {requirement!r}"
        current = Pin(Version(match.group(2)))
        current.hashes = [o.split("=", 1)[1].strip() for o in options if o.startswith("hash=")]
        pins[canonicalize_name(match.group(1))] = current
    return pins


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def inputs(lock: str) -> list[Requirement]:
    """The direct requirements of a lock on the target platform, the project's
    references to its own extras expanded."""
    config = pyproject()
    found = [Requirement(r) for r in config["build-system"]["requires"]]
    if lock != "build":
        project = config["project"]
        optional = project["optional-dependencies"]
        extras = LOCKS[lock]
        wanted = set(optional) if extras is None else set(extras)
        found = found if lock == "dev" else []
        found += [Requirement(r) for r in project["dependencies"]]
        seen: set[str] = set()
        while wanted - seen:
            extra = (wanted - seen).pop()
            seen.add(extra)
            for line in optional[extra]:
                requirement = Requirement(line)
                if canonicalize_name(requirement.name) == PROJECT:
                    wanted |= requirement.extras
                else:
                    found.append(requirement)
    return [r for r in found if r.marker is None or r.marker.evaluate(TARGET)]


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_the_lock_pins_every_requirement_within_its_specifier(lock: str) -> None:
    pins = read_lock(lock)
    for requirement in inputs(lock):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock}.lock misses {requirement}: run `make lock`"
        version = pins[name].version
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock}.lock pins {name}=={version}, outside {requirement}: run `make lock`"
        )


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_the_lock_pins_nothing_pyproject_no_longer_asks_for(lock: str) -> None:
    """uv notes what asked for each pin; a direct requirement that left pyproject.toml
    (or the build input) leaves a pin that nothing asks for."""
    direct = {canonicalize_name(r.name) for r in inputs(lock)}
    for name, pin in read_lock(lock).items():
        if any(v.endswith("(pyproject.toml)") or v == f"-r {BUILD_INPUT}" for v in pin.via):
            assert name in direct, f"{lock}.lock pins {name}, no longer required: run `make lock`"


def test_the_build_input_is_the_build_system_of_pyproject() -> None:
    lines = (ROOT / BUILD_INPUT).read_text().splitlines()
    requirements = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert requirements == pyproject()["build-system"]["requires"]


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_pin_is_hash_checked(lock: str) -> None:
    for name, pin in read_lock(lock).items():
        assert pin.hashes, f"{lock}.lock has no hash for {name}"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes), name


@pytest.mark.parametrize("lock", ["scorer", "jobs", "build"])
def test_a_package_has_one_version_in_every_lock(lock: str) -> None:
    """The images' locks are compiled against dev.lock: what the scorer and the jobs
    run is what the tests ran."""
    dev = read_lock("dev")
    for name, pin in read_lock(lock).items():
        assert name in dev, f"{lock}.lock pins {name}, which dev.lock lacks"
        assert pin.version == dev[name].version, (
            f"{name}: {pin.version} in {lock}.lock, {dev[name].version} in dev.lock"
        )


def scorer_forbidden() -> dict[str, str]:
    """requirements/scorer-forbidden.txt: distribution name -> import name."""
    rows = (REQUIREMENTS / "scorer-forbidden.txt").read_text().splitlines()
    pairs = [row.split() for row in rows if row.strip() and not row.startswith("#")]
    # "distribution module", the distribution spelt as the locks spell it: a name
    # spelt otherwise would forbid nothing.
    for pair in pairs:
        assert len(pair) == 2 and pair[0] == canonicalize_name(pair[0]), pair
        assert pair[1].isidentifier(), pair
    return dict(pairs)


def test_the_scorer_lock_holds_no_forbidden_package() -> None:
    """What the scorer never imports stays out of its image; the Dockerfile and the
    Docker smoke test check the image, this checks the lock it installs, in a second."""
    forbidden = scorer_forbidden()
    assert {"kubernetes", "pandas", "scikit-learn", "scipy", "evidently"} <= set(forbidden)
    pinned = set(read_lock("scorer")) & set(forbidden)
    assert not pinned, f"requirements/scorer.lock pins {sorted(pinned)}: see scorer-forbidden.txt"
