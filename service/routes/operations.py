"""Operational endpoints: probes, the served model, counts since start, metrics.

``/health``, ``/ready`` and ``/metrics`` are left out of the HTTP metrics (they are
hit every few seconds by Kubernetes and Prometheus and would drown the real traffic).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from service.dependencies import ModelDep, StateDep
from service.model_holder import LoadedModel, ModelHolder
from service.schemas import ErrorBody, Health, Readiness, Selection, Stats

router = APIRouter(tags=["operations"])


class ModelInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "accident-severity",
                    "alias": "production",
                    "selection": "following",
                    "pinned_version": None,
                    "version": "20261125t193000.481516-1a2b3c4d-5c1d09e2",
                    "runtime": "onnxruntime",
                    "threshold": 0.5,
                    "loaded_at": "2026-11-25T19:31:02+00:00",
                    "load_seconds": 0.042,
                    "created_at": "2026-11-25T19:30:00+00:00",
                    "model_kind": "hist_gradient_boosting",
                    "contract_fingerprint": "3f1c...",
                    "data_years": [2021, 2022, 2023],
                    "metrics": {"roc_auc": 0.83, "f1": 0.71},
                }
            ]
        }
    )

    name: str = Field(description="Model name in the registry.")
    alias: str = Field(
        description="Alias followed by hot reload; while pinned, the alias it would follow."
    )
    selection: Selection = Field(
        description="'pinned': SCORER_MODEL_VERSION fixes the served version and the alias "
        "is never read; 'following': the alias's version is served and followed."
    )
    pinned_version: str | None = Field(
        description="The version SCORER_MODEL_VERSION pins (null while following)."
    )
    version: str
    runtime: str = Field(description="Always onnxruntime: the scorer serves ONNX models only.")
    threshold: float
    loaded_at: str
    load_seconds: float
    created_at: str | None = Field(None, description="When the version was trained.")
    model_kind: str | None = None
    contract_fingerprint: str | None = Field(
        None, description="Fingerprint of the feature contract the model was trained on."
    )
    data_years: list[int] | None = Field(None, description="BAAC years of its training data.")
    metrics: dict[str, Any] = Field(
        default_factory=dict, description="Its held-out metrics, as its manifest records them."
    )


def public_summary(loaded: LoadedModel, name: str, holder: ModelHolder) -> dict[str, Any]:
    """What anyone may know of the served model; the whole manifest (data sources,
    library and code versions, storage layout) is behind the admin key, at GET
    /model/manifest."""
    manifest = loaded.manifest
    data = manifest.get("data")
    years = data.get("years") if isinstance(data, dict) else None
    metrics = manifest.get("metrics")
    return {
        "name": name,
        "alias": holder.alias,
        "selection": holder.selection,
        "pinned_version": holder.pinned_version,
        "version": loaded.version,
        "runtime": loaded.runtime,
        "threshold": loaded.threshold,
        "loaded_at": loaded.loaded_at.isoformat(),
        "load_seconds": round(loaded.load_seconds, 4),
        "created_at": _text(manifest.get("created_at")),
        "model_kind": _text(manifest.get("model_kind")),
        "contract_fingerprint": _text(manifest.get("contract_fingerprint")),
        "data_years": years if isinstance(years, list) else None,
        "metrics": {
            key: value
            for key, value in (metrics.items() if isinstance(metrics, dict) else ())
            if isinstance(value, int | float)
        },
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@router.get("/health", response_model=Health, summary="Liveness: the process is up")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: a verified model is loaded",
    responses={503: {"model": Readiness, "description": "No model loaded yet."}},
)
async def ready(state: StateDep) -> Any:
    loaded = state.holder.current
    if loaded is None:
        return JSONResponse(
            {"status": "not ready", "detail": state.holder.last_error or "loading"},
            status_code=503,
        )
    # Still serving, but a newer version may have been refused: say why.
    return {
        "status": "ready",
        "model_version": loaded.version,
        "detail": state.holder.last_error,
    }


@router.get(
    "/model/info",
    response_model=ModelInfo,
    summary="The served model: a public summary",
    responses={503: {"model": ErrorBody, "description": "No model loaded yet."}},
)
async def model_info(state: StateDep, loaded: ModelDep) -> dict[str, Any]:
    """Version, kind, threshold, metrics and contract of the served model; its whole
    manifest is at GET /model/manifest, with the admin key."""
    return public_summary(loaded, state.settings.model_name, state.holder)


@router.get("/stats", response_model=Stats, summary="Predictions since this process started")
async def stats(state: StateDep) -> dict[str, Any]:
    return state.stats.as_dict()


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Text exposition format."}},
)
def metrics(state: StateDep) -> Response:
    # A plain def: collection may take a while with many series and runs in the
    # thread pool, off the event loop.
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
