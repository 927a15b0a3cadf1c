"""The served model: loaded, verified, warmed up, then swapped in one assignment.

Requests read :attr:`ModelHolder.current` once and use that object to the end, so a
swap in the middle of a request cannot mix two versions, and the old model stays
alive until its last request lets go of it: no request fails during a swap.

A holder either follows an alias (the default) or is pinned to one version
(``SCORER_MODEL_VERSION``, rollback by configuration): a pinned holder never reads the
alias, so neither the poller nor ``POST /model/reload`` can move it; both only retry
the pinned version while it is not loaded yet (e.g. the storage was down at start-up).

Loading runs on the app's storage executor (downloading and building an ONNX session
can take a second), so the event loop keeps serving the old model meanwhile. A lock makes the
poller and ``POST /model/reload`` take turns instead of loading the same version twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core import contract
from core.errors import TriageError
from core.registry import Registry, ScoringModel
from service.errors import ModelLoadError, public_message
from service.metrics import ScorerMetrics
from service.schemas import Selection
from service.storage_executor import StorageExecutor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    model: ScoringModel
    version: str
    threshold: float
    runtime: str
    manifest: Mapping[str, Any]
    loaded_at: datetime
    load_seconds: float


@dataclass(frozen=True)
class RefreshResult:
    changed: bool
    version: str | None
    previous_version: str | None
    load_seconds: float | None = None


def verify_by_scoring(model: ScoringModel) -> None:
    """A model that cannot score the contract's example row is refused before it
    serves anything; this call is also the warm-up (first-call allocations)."""
    matrix = contract.encode_rows([contract.example_row(), contract.example_row()])
    probability = model.predict_proba(matrix)
    if probability.shape != (2,):
        raise ModelLoadError(
            f"model {model.version}: warm-up returned shape {probability.shape}, expected (2,)"
        )
    if not all(0.0 <= float(p) <= 1.0 and not math.isnan(p) for p in probability):
        raise ModelLoadError(f"model {model.version}: warm-up returned {probability.tolist()}")
    if not 0.0 < model.threshold < 1.0:
        raise ModelLoadError(f"model {model.version}: threshold {model.threshold} not in (0, 1)")


def reference_share(manifest: Mapping[str, Any]) -> float | None:
    balance = manifest.get("data", {}).get("class_balance", {})
    value = balance.get("train_prioritaire_share")
    return float(value) if isinstance(value, int | float) else None


class ModelHolder:
    def __init__(
        self,
        registry: Registry,
        alias: str,
        metrics: ScorerMetrics,
        executor: StorageExecutor,
        *,
        pinned_version: str | None = None,
    ) -> None:
        self.registry = registry
        self.executor = executor
        self.alias = alias
        self.pinned_version = pinned_version
        self.metrics = metrics
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self._lock = asyncio.Lock()

    @property
    def selection(self) -> Selection:
        return "following" if self.pinned_version is None else "pinned"

    def _version_to_serve(self) -> str:
        """The pinned version, or the one the alias names now (read from storage)."""
        if self.pinned_version is not None:
            return self.pinned_version
        version = self.registry.alias_version(self.alias)
        if version is None:
            raise ModelLoadError(
                f"no version of model {self.registry.name} is promoted to "
                f"alias {self.alias!r} yet (train one first)"
            )
        return version

    def _load(self, version: str) -> LoadedModel:
        started = time.perf_counter()
        model = self.registry.load(version)
        verify_by_scoring(model)
        return LoadedModel(
            model=model,
            version=model.version,
            threshold=float(model.threshold),
            runtime=model.runtime,
            manifest=model.manifest,
            loaded_at=datetime.now(UTC),
            load_seconds=time.perf_counter() - started,
        )

    async def refresh(self) -> RefreshResult:
        """Serves the pinned version, or the alias's, loading it if it is not the
        current one. Pinned and already serving it: returns at once, no storage call.

        Raises ModelLoadError (after counting the failure) when the alias cannot be
        read or the version cannot be loaded; the current model keeps serving.
        """
        async with self._lock:
            previous = self.current.version if self.current else None
            if self.pinned_version is not None and self.pinned_version == previous:
                return RefreshResult(False, previous, previous)
            try:
                version = await self.executor.run(self._version_to_serve)
                if version == previous:
                    return RefreshResult(False, version, previous)
                loaded = await self.executor.run(self._load, version)
            except Exception as error:
                # Anything can come out of an ONNX runtime or a storage; whatever it
                # is, the served model must stay and the poller must live on. The
                # full message (endpoint, bucket, paths) goes to the log only.
                expected = isinstance(error, TriageError | ModelLoadError | OSError)
                pinned = (
                    ""
                    if self.pinned_version is None
                    else f"pinned version {self.pinned_version} (SCORER_MODEL_VERSION): "
                )
                reason = pinned + public_message(error)
                self.metrics.reloads.labels("failure").inc()
                self.last_error = reason
                log.error(
                    "model load failed; keeping the current model",
                    extra={"error": pinned + str(error), "serving": previous},
                    exc_info=not expected,
                )
                raise ModelLoadError(f"{reason} (still serving {previous or 'nothing'})") from error
            # The swap: one reference assignment on the event loop thread.
            self.current = loaded
            self.last_error = None
            self.metrics.reloads.labels("success").inc()
            self.metrics.model_swapped(
                loaded.version,
                loaded.runtime,
                loaded.load_seconds,
                reference_share(loaded.manifest),
                selection=self.selection,
            )
            log.info(
                "model loaded",
                extra={
                    "version": loaded.version,
                    "previous": previous,
                    "selection": self.selection,
                    "runtime": loaded.runtime,
                    "load_seconds": round(loaded.load_seconds, 3),
                },
            )
            return RefreshResult(True, loaded.version, previous, loaded.load_seconds)

    async def poll_forever(self, interval: float) -> None:
        """The hot-reload loop; failures are logged and counted by :meth:`refresh`.
        Pinned, a pass after the pinned version is loaded costs nothing (no storage
        call), so the loop runs on rather than having a second way to end."""
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(ModelLoadError):
                await self.refresh()
