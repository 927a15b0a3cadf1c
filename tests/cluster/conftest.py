"""Fixtures of the cluster tests: one Kubernetes control plane for the whole session
(starting it takes about half a minute; see ``tests/k8s_cluster.py``) and a fresh
namespace per test, deleted after it.

Without the binaries (``bash .ci/build-go-tools.sh cluster``) the tests skip with that
reason, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.k8s_cluster import Cluster, control_plane, require_control_plane_binaries

READY_SECONDS = pytest.StashKey[float]()


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The session's control plane; its work folder (logs included) is removed after."""
    require_control_plane_binaries()
    with (
        tempfile.TemporaryDirectory(prefix="k8s-control-plane-") as folder,
        control_plane(Path(folder)) as running,
    ):
        request.config.stash[READY_SECONDS] = running.ready_seconds
        yield running


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    seconds = config.stash.get(READY_SECONDS, None)
    if seconds is not None:
        terminalreporter.write_line(f"Kubernetes control plane ready in {seconds:.1f} s")


@pytest.fixture
def make_namespace(cluster: Cluster) -> Iterator[Callable[..., str]]:
    """``make_namespace(labels=None)``: a new namespace with a unique name, ready for
    pods; every one is deleted after the test."""
    created: list[str] = []

    def make(labels: Mapping[str, str] | None = None) -> str:
        name = cluster.create_namespace(f"test-{uuid.uuid4().hex[:10]}", labels)
        created.append(name)
        return name

    yield make
    for name in created:
        cluster.delete_namespace(name)


@pytest.fixture
def namespace(make_namespace: Callable[..., str]) -> str:
    """A fresh namespace (no Pod Security labels: the cluster default, privileged)."""
    return make_namespace()
