"""Rollback by configuration: SCORER_MODEL_VERSION pins the served version, and neither
the poller nor POST /model/reload moves a pinned scorer when the alias moves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from core.registry import Registry
from core.storage import open_storage
from service.__main__ import main
from service.metrics import ScorerMetrics
from service.model_holder import ModelHolder, RefreshResult
from service.settings import DEFAULT_MODEL_NAME, ScorerSettings
from service.storage_executor import StorageExecutor
from tests.factories import publish_model
from tests.service.helpers import AUTH, V1, V2

V3 = "v3"
ROW_FIELDS = ("selection", "pinned_version", "alias", "version")


def file_registry(root: Path) -> Registry:
    return Registry(open_storage(root.as_uri()), DEFAULT_MODEL_NAME)


@pytest.mark.parametrize(("pinned", "served_after_the_move"), [(V1, V1), (None, V2)])
def test_the_poller_follows_an_alias_move_unless_pinned(
    registry_root: Path, pinned: str | None, served_after_the_move: str
) -> None:
    """The same real poller run over a file:// registry: following, it swaps to the
    alias's new version; pinned, it keeps the pinned one and never reads the alias."""
    registry = file_registry(registry_root)
    alias_reads = 0
    read_alias = registry.alias_version

    def counted_alias_version(alias: str = "production") -> str | None:
        nonlocal alias_reads
        alias_reads += 1
        return read_alias(alias)

    registry.alias_version = counted_alias_version  # type: ignore[method-assign]

    async def scenario() -> tuple[str, int]:
        executor = StorageExecutor(2)
        executor.start()
        holder = ModelHolder(
            registry, "production", ScorerMetrics(), executor, pinned_version=pinned
        )
        assert (await holder.refresh()).version == V1
        registry.promote(V2, reason="the alias moves")
        passes_after_the_move = 0
        one_pass = asyncio.Event()
        refresh = holder.refresh

        async def counted_refresh() -> RefreshResult:
            nonlocal passes_after_the_move
            result = await refresh()
            passes_after_the_move += 1
            one_pass.set()
            return result

        holder.refresh = counted_refresh  # type: ignore[method-assign]
        poller = asyncio.create_task(holder.poll_forever(0.001))
        try:
            # Three whole passes after the move: the first one already sees it.
            while passes_after_the_move < 3:
                one_pass.clear()
                await asyncio.wait_for(one_pass.wait(), timeout=30)
        finally:
            poller.cancel()
            executor.shutdown()
        assert holder.current is not None
        return holder.current.version, alias_reads

    served, reads = asyncio.run(scenario())
    assert served == served_after_the_move
    assert registry.alias_version() == V2
    if pinned is None:
        assert reads > 3  # start-up, then every pass reads the pointer
    else:
        assert reads == 0  # not one read, at start-up or since


def test_a_pinned_scorer_serves_its_version_and_says_so(
    make_client: Callable[..., TestClient],
) -> None:
    pinned = make_client(model_version=V2)
    info = pinned.get("/model/info").json()
    assert {key: info[key] for key in ROW_FIELDS} == {
        "selection": "pinned",
        "pinned_version": V2,
        "alias": "production",
        "version": V2,
    }
    assert pinned.get("/ready").json()["model_version"] == V2
    metrics = pinned.get("/metrics").text
    assert 'triage_model_info{runtime="onnxruntime",selection="pinned",version="v2"} 1.0' in metrics

    following = make_client()
    info = following.get("/model/info").json()
    assert {key: info[key] for key in ROW_FIELDS} == {
        "selection": "following",
        "pinned_version": None,
        "alias": "production",
        "version": V1,
    }


def test_the_openapi_schema_documents_the_selection(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for model in ("ModelInfo", "ReloadResult"):
        selection = schemas[model]["properties"]["selection"]
        assert selection["enum"] == ["pinned", "following"], model
        assert "SCORER_MODEL_VERSION" in selection["description"], model
    assert "pinned_version" in schemas["ModelInfo"]["required"]


def test_an_unknown_pinned_version_is_refused_at_start_and_the_scorer_stays_unready(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(model_version="v9", api_key="k")
    ready = client.get("/ready")
    assert ready.status_code == 503
    reason = "pinned version v9 (SCORER_MODEL_VERSION): model accident-severity has no version 'v9'"
    assert ready.json()["detail"] == reason
    logged = [r for r in caplog.records if r.name == "service.model_holder"]
    assert [(r.levelname, getattr(r, "error", None)) for r in logged] == [("ERROR", reason)]
    assert client.get("/model/info").status_code == 503
    # Reloading cannot help a version that does not exist, nor fall back on the alias.
    reload = client.post("/model/reload", headers={"X-API-Key": "k"})
    assert reload.status_code == 503
    assert reload.json()["detail"].startswith("pinned version v9 (SCORER_MODEL_VERSION): ")
    assert client.get("/ready").status_code == 503


def test_a_pinned_version_without_its_onnx_twin_is_refused_at_start(
    make_client: Callable[..., TestClient], registry_root: Path
) -> None:
    publish_model(file_registry(registry_root), V3, seed=3, onnx=False, promote=False)
    ready = make_client(model_version=V3).get("/ready")
    assert ready.status_code == 503
    detail = ready.json()["detail"]
    assert detail.startswith("pinned version v3 (SCORER_MODEL_VERSION): model ")
    assert "has no ONNX twin (model.onnx is not in its manifest)" in detail
    assert "\n" not in detail


def test_reload_reloads_the_pinned_version_never_the_alias(
    make_client: Callable[..., TestClient], registry_root: Path
) -> None:
    registry = file_registry(registry_root)
    client = make_client(model_version=V1, api_key="k")
    registry.promote(V2, reason="the alias moves")
    answer = client.post("/model/reload", headers={"X-API-Key": "k"})
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "unchanged",
        "version": V1,
        "selection": "pinned",
        "previous_version": V1,
        "load_seconds": None,
    }
    assert client.get("/model/info").json()["version"] == V1

    # Pinned to a version published after start-up: reload loads it once it exists.
    late = make_client(model_version=V3, api_key="k")
    assert late.get("/ready").status_code == 503
    publish_model(registry, V3, seed=3, promote=False)
    loaded = late.post("/model/reload", headers={"X-API-Key": "k"}).json()
    assert (loaded["status"], loaded["version"], loaded["selection"]) == ("loaded", V3, "pinned")
    assert late.get("/ready").json()["model_version"] == V3


def test_reload_of_a_following_scorer_says_so(client: TestClient, registry: Registry) -> None:
    registry.promote(V2, reason="the alias moves")
    answer = client.post("/model/reload", headers=AUTH).json()
    assert (answer["status"], answer["version"], answer["selection"]) == (
        "loaded",
        V2,
        "following",
    )


@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_model_version_follows_the_alias(
    blank: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORER_MODEL_VERSION", blank)
    assert ScorerSettings().model_version is None


def test_the_model_version_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    version = "20261125t193000.481516-1a2b3c4d-5c1d09e2"
    monkeypatch.setenv("SCORER_MODEL_VERSION", version)
    assert ScorerSettings().model_version == version


def test_the_command_line_has_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--model-version MODEL_VERSION Registry version to serve instead" in help_text
    assert "env SCORER_MODEL_VERSION" in help_text


@pytest.mark.parametrize("bad", ["V1", "v1/../v2", "-v1", "v1 ", "a" * 64])
def test_a_malformed_model_version_is_refused_with_the_registry_rule(bad: str) -> None:
    with pytest.raises(ValidationError, match=r"invalid model version .*lowercase letters"):
        ScorerSettings(model_version=bad)
