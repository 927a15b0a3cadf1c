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
from service.schemas import ErrorBody, Health, Readiness, Stats

router = APIRouter(tags=["operations"])


class ModelInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "accident-severity",
                    "alias": "production",
                    "version": "20261125t193000-1a2b3c4d",
                    "runtime": "onnxruntime",
                    "threshold": 0.5,
                    "loaded_at": "2026-11-25T19:31:02+00:00",
                    "load_seconds": 0.042,
                    "manifest": {"version": "20261125t193000-1a2b3c4d", "model_kind": "..."},
                }
            ]
        }
    )

    name: str = Field(description="Model name in the registry.")
    alias: str = Field(description="Alias followed by hot reload.")
    version: str
    runtime: str = Field(description="onnxruntime, or scikit-learn for a version without ONNX.")
    threshold: float
    loaded_at: str
    load_seconds: float
    manifest: dict[str, Any] = Field(description="The version's manifest.json, as published.")


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
    return {"status": "ready", "model_version": loaded.version}


@router.get(
    "/model/info",
    response_model=ModelInfo,
    summary="The served model and its manifest",
    responses={503: {"model": ErrorBody, "description": "No model loaded yet."}},
)
async def model_info(state: StateDep, loaded: ModelDep) -> dict[str, Any]:
    return {
        "name": state.settings.model_name,
        "alias": state.settings.alias,
        "version": loaded.version,
        "runtime": loaded.runtime,
        "threshold": loaded.threshold,
        "loaded_at": loaded.loaded_at.isoformat(),
        "load_seconds": round(loaded.load_seconds, 4),
        "manifest": dict(loaded.manifest),
    }


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
