"""Fixtures shared by every test package. Helpers that are not fixtures live in
``tests/support.py``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

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
def s3_server() -> Iterator[S3Server]:
    """The real ``moto_server`` on a free loopback port, shared by the session."""
    with moto_s3_server() as server:
        yield server


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
    """Point the AWS SDK (through AWS_ENDPOINT_URL) at the session's moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    return s3_server


@pytest.fixture
def s3_bucket(s3_env: S3Server) -> str:
    """``s3://<fresh bucket>/<prefix>/``: a root nobody else writes to."""
    bucket = s3_env.make_bucket()
    return f"s3://{bucket}/root/"
