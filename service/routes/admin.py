"""Admin endpoints, behind the ``X-API-Key`` header (403 when no key is configured,
401 with a missing or wrong key)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, status

from service.dependencies import AdminDep, ModelDep, StateDep
from service.schemas import BODY_ERRORS, ErrorBody, ReloadResult, RetrainAccepted, RetrainRequest

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API key."},
    403: {"model": ErrorBody, "description": "Admin endpoints disabled (no key configured)."},
}

router = APIRouter(tags=["admin"], dependencies=[AdminDep], responses=_AUTH_ERRORS)


@router.post(
    "/model/reload",
    response_model=ReloadResult,
    summary="Load the alias's version (or the pinned one) now",
    responses={503: {"model": ErrorBody, "description": "Load failed; old model kept."}},
)
async def reload_model(state: StateDep) -> dict[str, Any]:
    """Reads the alias pointer and, when it names another version, downloads,
    verifies, warms up and swaps it in, as the background poll would. A scorer
    pinned by SCORER_MODEL_VERSION never reads the alias: it loads the pinned
    version if it is not served yet (`selection` says which)."""
    result = await state.holder.refresh()
    assert result.version is not None
    return {
        "status": "loaded" if result.changed else "unchanged",
        "version": result.version,
        "selection": state.holder.selection,
        "previous_version": result.previous_version,
        "load_seconds": None if result.load_seconds is None else round(result.load_seconds, 4),
    }


@router.get(
    "/model/manifest",
    summary="The served version's whole manifest",
    responses={503: {"model": ErrorBody, "description": "No model loaded yet."}},
)
async def model_manifest(loaded: ModelDep) -> dict[str, Any]:
    """The manifest.json of the served version, as published (data sources, code and
    library versions, checksums); GET /model/info is its public summary."""
    return dict(loaded.manifest)


@router.post(
    "/retrain",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetrainAccepted,
    summary="Start a training run",
    responses={
        **BODY_ERRORS,
        403: {"model": ErrorBody, "description": "Admin or retraining disabled."},
        409: {
            "model": ErrorBody,
            "description": "A training run is in progress (local run, or a Job of the "
            "CronJob still active), or the retrain of this decision window (the UTC hour) "
            "was already claimed by the drift job or another call: the answer names "
            "the holder.",
        },
        503: {"model": ErrorBody, "description": "The run could not be started."},
    },
)
async def retrain(
    state: StateDep, body: Annotated[RetrainRequest | None, Body()] = None
) -> dict[str, Any]:
    """Starts the training job (local subprocess or Kubernetes Job, per
    SCORER_RETRAIN_MODE) and returns at once; a version the job promotes is served
    by hot reload."""
    request = body or RetrainRequest()
    launched = await state.retrain.launch(request.reason)
    return {"mode": launched.mode.value, "run": launched.run, "detail": launched.detail}
