"""The Dockerfile and its smoke test.

The static checks run everywhere. The smoke test (``.ci/docker-smoke.sh``: offline
build from a debootstrap base, training in the jobs image, the scorer on the host
network as uid 10001 with a read-only root filesystem, /ready and /predict from the
host) needs a Docker engine, or root and dockerd to start one; it takes minutes.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
UID = 10001


def stages() -> dict[str, list[str]]:
    """Instructions of each stage, by stage name, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            found[current] = []
        elif current:
            found[current].append(line)
    return found


def test_default_base_is_the_official_slim_python_and_no_frontend_is_pulled() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    assert not re.search(r"^#\s*syntax=", text, re.MULTILINE | re.IGNORECASE), (
        "BuildKit would pull the frontend image: no offline build"
    )


def test_final_images_run_as_the_fixed_non_root_uid() -> None:
    for stage in ("scorer", "jobs"):
        users = [i for i in stages()[stage] if i.startswith("USER ")]
        assert users == [f"USER {UID}:{UID}"], stage


def test_scorer_has_a_healthcheck_and_labels() -> None:
    scorer = stages()["scorer"]
    assert any(i.startswith("HEALTHCHECK ") and "/health" in i for i in scorer)
    labels = " ".join(i for i in scorer if i.startswith("LABEL "))
    for key in ("title", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert 'ENTRYPOINT ["python", "-m", "service"]' in scorer


def test_scorer_image_gets_no_training_or_drift_dependency() -> None:
    installs = " ".join(i for i in stages()["build-scorer"] if "pip install" in i)
    assert "-r requirements/scorer.lock" in installs
    assert "jobs.lock" not in installs
    # The build fails when a package of requirements/scorer-forbidden.txt is back.
    assert any(
        i.startswith("RUN ") and i.rstrip().endswith("requirements/scorer-forbidden.txt")
        for i in stages()["build-scorer"]
    )


def test_images_install_their_lock_with_hashes_and_the_project_without_deps() -> None:
    for stage, lock in (("build-scorer", "scorer"), ("build-jobs", "jobs")):
        instructions = stages()[stage]
        installs = [i for i in instructions if "pip install" in i]
        dependencies, project = installs
        assert f"-r requirements/{lock}.lock" in dependencies, stage
        assert "--require-hashes" in dependencies, stage
        assert "pip check" in dependencies, stage
        assert "--no-deps" in project and "--no-build-isolation" in project, stage
        # The lock is copied before the code, so a code change reuses the venv layer.
        copies = [i for i in instructions if i.startswith("COPY ")]
        assert copies[0] == f"COPY requirements/{lock}.lock ./requirements/", stage
        assert instructions.index(copies[0]) < instructions.index(dependencies)
        assert all(instructions.index(c) > instructions.index(dependencies) for c in copies[1:])
    builder = " ".join(stages()["builder"])
    assert "--require-hashes -r requirements/build.lock" in builder


def test_pip_is_configurable_for_offline_builds() -> None:
    builder = stages()["builder"]
    for arg in ("PIP_NO_INDEX", "PIP_FIND_LINKS", "PIP_INDEX_URL"):
        assert any(i.startswith(f"ARG {arg}=") for i in builder), arg


def test_dockerignore_is_an_allow_list() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "requirements/*.lock",
        "requirements/scorer-forbidden.txt",
        "core",
        "training",
        "service",
        "monitoring",
        ".wheelhouse",
    }


def test_every_copied_path_is_in_the_build_context() -> None:
    """A path the Dockerfile copies but .dockerignore leaves out fails only at build
    time, in the slow smoke test."""
    allowed = [
        line.strip()[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip().startswith("!")
    ]
    copies = [
        i.split()[1:-1]
        for instructions in stages().values()
        for i in instructions
        if i.startswith("COPY ") and "--from=" not in i
    ]
    for source in {s for sources in copies for s in sources}:
        assert any(fnmatch.fnmatch(source, a) or fnmatch.fnmatch(a, source) for a in allowed), (
            f"the Dockerfile copies {source}, which .dockerignore leaves out"
        )


def test_the_chart_mounts_what_the_image_writes() -> None:
    """The image writes /tmp only; the chart's pods mount an emptyDir there, which is
    what `docker run --read-only --tmpfs /tmp` reproduces in the smoke test."""
    smoke = (ROOT / ".ci" / "docker-smoke.sh").read_text()
    assert "--read-only" in smoke
    assert "--tmpfs /tmp" in smoke
    values = yaml.safe_load((ROOT / "helm" / "accident-triage" / "values.yaml").read_text())
    assert values["scorer"]["uid"] == UID
    assert values["training"]["uid"] == UID
    assert values["drift"]["uid"] == UID


def docker_available() -> str | None:
    """None when the smoke test can run, else why not."""
    if shutil.which("docker") is None:
        return "no docker client (apt-get install docker.io)"
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    if probe.returncode == 0:
        return None
    if os.geteuid() == 0 and shutil.which("dockerd"):
        return None  # the script starts dockerd itself
    return "no Docker engine is reachable and dockerd cannot be started here"


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_docker_smoke() -> None:
    reason = docker_available()
    if reason:
        pytest.skip(reason)
    if shutil.which("debootstrap") is None and os.geteuid() != 0:
        pytest.skip("debootstrap is missing and cannot be installed without root")
    result = subprocess.run(
        ["bash", str(ROOT / ".ci" / "docker-smoke.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "docker smoke test passed" in result.stdout
