"""Fixtures shared by every test package. Helpers that are not fixtures live in
``tests/support.py``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import seaweedfs_server as swfs
from tests.fake_kube import FakeKube, fake_kube_server
from tests.support import S3Server, moto_s3_server

# Variables that would make boto3 read a developer's real configuration or reach AWS.
_AWS_VARIABLES_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[swfs.SeaweedFS]:
    """The chart's own S3 store, ``weed mini`` with the identities and flags of
    ``helm template`` (default values: bucket ``triage``, no prefix), on free loopback
    ports, shared by the session (it takes a few seconds to start). Missing ``weed``
    or ``helm``: a skip, or a failure under CI=true."""
    swfs.require_seaweedfs()
    with swfs.seaweedfs_server() as server:
        yield server


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    """The real ``moto_server`` on a free loopback port. Only kept as the stand-in for
    AWS S3 itself, where SeaweedFS behaves differently and the storage layer must
    handle both (error codes, bucket auto-creation): see docs/seaweedfs.md."""
    with moto_s3_server() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server(seaweedfs: swfs.SeaweedFS) -> S3Server:
    """The S3 server the S3 suites run on: SeaweedFS, the store the chart deploys.
    Its ``admin`` client and the credentials ``s3_env`` sets are the chart's admin
    identity, the only one that may create the per-test buckets."""
    return seaweedfs


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and no trace of a developer's AWS configuration, so the SDK
    can only talk to the endpoint a test sets. No endpoint is set here."""
    for name in _AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def s3_env(s3_server: S3Server, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Point the AWS SDK (through AWS_ENDPOINT_URL) at the session's S3 server, with
    credentials that may create buckets."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    return s3_server


@pytest.fixture
def s3_bucket(s3_env: S3Server) -> Iterator[str]:
    """``s3://<fresh bucket>/<prefix>/``: a root nobody else writes to. The bucket is
    emptied and deleted afterwards (on SeaweedFS every bucket holds volumes)."""
    bucket = s3_env.make_bucket()
    yield f"s3://{bucket}/root/"
    swfs.empty_and_delete_bucket(s3_env.admin, bucket)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that uses the SeaweedFS server, even through s3_server, carries the
    # marker, so `-m "not seaweedfs"` leaves out every test that needs `weed`.
    for item in items:
        if "seaweedfs" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.seaweedfs)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if swfs.STARTUP_SECONDS:
        times = ", ".join(f"{seconds:.1f} s" for seconds in swfs.STARTUP_SECONDS)
        terminalreporter.write_line(
            f"SeaweedFS: {len(swfs.STARTUP_SECONDS)} server(s) started, ready after {times}"
        )


@pytest.fixture
def fake_kube() -> Iterator[FakeKube]:
    """A fake Kubernetes API server on a loopback port, driven by the real client."""
    with fake_kube_server() as kube:
        yield kube
