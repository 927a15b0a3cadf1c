"""Fixtures of the scorer tests: a file registry with two real (small) model versions,
apps built on it, and a real uvicorn server on a loopback port for the tests that
need concurrency or a network client."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.registry import Registry
from core.storage import open_storage
from service.app import create_app
from service.settings import DEFAULT_MODEL_NAME, ScorerSettings
from tests.factories import publish_model
from tests.service.helpers import API_KEY, V1, V2, live_server


@pytest.fixture(scope="session")
def published_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fitted once per session (seconds each): v1 promoted to production, v2 only
    published, with different seeds so their probabilities differ."""
    root = tmp_path_factory.mktemp("scorer-registry")
    registry = Registry(open_storage(str(root)), DEFAULT_MODEL_NAME)
    publish_model(
        registry,
        V1,
        seed=0,
        manifest_extra={"data": {"class_balance": {"train_prioritaire_share": 0.4}}},
    )
    publish_model(registry, V2, seed=1, promote=False)
    return root


@pytest.fixture
def registry_root(published_registry: Path, tmp_path: Path) -> Path:
    """A private copy, so a test may promote, corrupt or delete versions."""
    root = tmp_path / "registry"
    shutil.copytree(published_registry, root)
    return root


@pytest.fixture
def registry(registry_root: Path) -> Registry:
    return Registry(open_storage(str(registry_root)), DEFAULT_MODEL_NAME)


@pytest.fixture
def make_settings(registry_root: Path) -> Callable[..., ScorerSettings]:
    def make(**overrides: Any) -> ScorerSettings:
        values: dict[str, Any] = {
            "registry_uri": str(registry_root),
            "poll_interval_seconds": 0,
            "inference_log_flush_seconds": 0.2,
            "retrain_mode": "disabled",
        }
        values.update(overrides)
        return ScorerSettings(**values)

    return make


@pytest.fixture
def make_client(
    make_settings: Callable[..., ScorerSettings],
) -> Iterator[Callable[..., TestClient]]:
    """Started TestClients (lifespan run), closed at the end of the test."""
    with contextlib.ExitStack() as stack:

        def make(app: FastAPI | None = None, **overrides: Any) -> TestClient:
            app = app or create_app(make_settings(**overrides))
            return stack.enter_context(TestClient(app, raise_server_exceptions=False))

        yield make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(api_key=API_KEY)


@pytest.fixture
def serve() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``with serve(app) as base_url:`` runs the app under uvicorn on loopback."""
    return live_server
