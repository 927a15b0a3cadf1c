"""The app factory: ``create_app(settings)`` builds one self-contained scorer (its own
metrics registry, model holder, buffers and background tasks), so tests can run many
side by side and nothing lives at module level.

The lifespan starts the storage executor (the app's own thread pool for storage
calls), loads the model before the first request (a failure leaves the app up but not
ready), starts the alias poller, the inference-log flusher and the feedback writer,
and on shutdown (after uvicorn has stopped accepting and drained requests) stops them
and flushes the inference log within ``shutdown_flush_seconds``, retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.registry import Registry
from core.storage import Storage, open_storage
from service.errors import ModelLoadError, ScorerError
from service.feedback import FeedbackStore
from service.http_metrics import instrument
from service.inference_log import InferenceLog
from service.json_body import document_models
from service.metrics import ScorerMetrics
from service.model_holder import ModelHolder
from service.rate_limit import RateLimiter
from service.request_context import RequestContextMiddleware
from service.request_ids import RequestIdSigner
from service.retrain import ApiRetrain
from service.routes import admin, inference, operations
from service.schemas import AccidentFeatures, batch_request_model
from service.scoring import ConfidenceTiers, Scorer, ScoringStats
from service.settings import ScorerSettings
from service.state import ScorerState
from service.storage_executor import StorageExecutor

log = logging.getLogger(__name__)

DESCRIPTION = """
Triage of French road accidents (BAAC data) by severity: **1 `prioritaire`** when a
victim is killed or hospitalised, **0 `non-prioritaire`** otherwise.

The request schema is generated from the feature contract (`core/contract.py`).
Every scored row is logged for drift monitoring; send the true label later with
`POST /feedback` and the `request_id` of the prediction (one label per prediction).
"""


def _open(settings: ScorerSettings, uri: str) -> Storage:
    return open_storage(
        uri,
        max_attempts=settings.storage_attempts,
        connect_timeout=settings.storage_connect_timeout_seconds,
        read_timeout=settings.storage_read_timeout_seconds,
    )


def create_app(
    settings: ScorerSettings,
    *,
    registry_storage: Storage | None = None,
    log_storage: Storage | None = None,
    host: str | None = None,
) -> FastAPI:
    """A scorer app. The storages default to those the settings name; tests pass
    their own (e.g. one that fails on demand)."""
    host = host or socket.gethostname()
    registry_storage = registry_storage or _open(settings, settings.registry_uri)
    if log_storage is None:
        log_storage = (
            registry_storage
            if settings.effective_inference_log_uri == settings.registry_uri
            else _open(settings, settings.effective_inference_log_uri)
        )
    metrics = ScorerMetrics()
    executor = StorageExecutor(settings.storage_threads)
    holder = ModelHolder(
        Registry(registry_storage, settings.model_name),
        settings.alias,
        metrics,
        executor,
        pinned_version=settings.model_version,
    )
    inference_log = (
        InferenceLog(
            log_storage,
            metrics,
            executor,
            host=host,
            flush_rows=settings.inference_log_flush_rows,
            flush_seconds=settings.inference_log_flush_seconds,
            capacity=settings.inference_log_buffer_rows,
            retry_max_seconds=settings.inference_log_retry_max_seconds,
        )
        if settings.inference_log_enabled
        else None
    )
    stats = ScoringStats()
    tiers = ConfidenceTiers(settings.confidence_high_margin, settings.confidence_medium_margin)
    state = ScorerState(
        settings=settings,
        metrics=metrics,
        holder=holder,
        scorer=Scorer(metrics, tiers, inference_log, stats),
        stats=stats,
        inference_log=inference_log,
        feedback=FeedbackStore(
            log_storage,
            metrics,
            executor,
            host=host,
            batch_seconds=settings.feedback_batch_seconds,
            max_pending=settings.feedback_max_pending,
            wait_seconds=settings.feedback_wait_seconds,
            remembered_ids=settings.feedback_remembered_ids,
        ),
        retrain=ApiRetrain(settings, holder, metrics, storage_executor=executor, host=host),
        host=host,
        storage_executor=executor,
        request_ids=RequestIdSigner(
            None if settings.request_id_key is None else settings.request_id_key.get_secret_value(),
            batch_limit=settings.batch_limit,
        ),
        feedback_limiter=RateLimiter(settings.feedback_rate_per_second, settings.feedback_burst),
    )
    if settings.request_id_key is None:
        log.warning(
            "no SCORER_REQUEST_ID_KEY: request ids are signed with a key of this process "
            "only, so a label sent after a restart or to another replica is refused"
        )

    app = FastAPI(
        title="Accident triage scorer",
        summary="Severity triage of French road accidents (BAAC)",
        description=DESCRIPTION,
        version="1",
        lifespan=_lifespan,
    )
    app.state.scorer = state
    # Inference first: routes are matched in order, and /predict is the hot one; its
    # plain routes go before the FastAPI ones (see inference.build_routes).
    batch_request = batch_request_model(settings.batch_limit)
    routes = inference.build_routes(batch_request, settings.batch_limit)
    app.router.routes.extend(routes.fast_routes)
    app.include_router(routes.router)
    app.include_router(operations.router)
    app.include_router(admin.router)
    document_models(app, AccidentFeatures, batch_request)
    _add_exception_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        issue_id=state.request_ids.issue,
    )
    # Added last, so outermost: the HTTP metrics count every answer, 413s included.
    instrument(app, metrics.registry)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ScorerState = app.state.scorer
    settings = state.settings
    state.storage_executor.start()
    # Before the first request: a model load failure is logged and counted, and the
    # app starts unready (GET /ready says why) so the pod is not sent traffic.
    with contextlib.suppress(ModelLoadError):
        await state.holder.refresh()
    tasks: list[asyncio.Task[None]] = []
    if settings.poll_interval_seconds > 0:
        tasks.append(
            asyncio.create_task(
                state.holder.poll_forever(settings.poll_interval_seconds), name="alias-poller"
            )
        )
    if state.inference_log is not None:
        state.inference_log.start()
    state.feedback.start()
    log.info(
        "scorer started",
        extra={
            "model": settings.model_name,
            "alias": settings.alias,
            "pinned_version": settings.model_version,
            "version": state.holder.current.version if state.holder.current else None,
            "registry": state.holder.registry.storage.uri,
        },
    )
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await state.retrain.close()
        await state.feedback.close()
        if state.inference_log is not None:
            await state.inference_log.close(settings.shutdown_flush_seconds)
        state.storage_executor.shutdown()
        log.info("scorer stopped")


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _handler(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "none")


def _add_exception_handlers(app: FastAPI) -> None:
    async def scorer_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ScorerError)
        return JSONResponse(
            {"detail": str(error), "request_id": _request_id(request)},
            status_code=error.status_code,
            headers=error.headers,
        )

    async def validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        state: ScorerState = request.app.state.scorer
        state.metrics.validation_errors.labels(_handler(request)).inc()
        problems = [
            {
                "field": ".".join(str(part) for part in problem.get("loc", ())),
                "reason": problem.get("msg", "invalid"),
                "type": problem.get("type", "invalid"),
            }
            for problem in error.errors()
        ]
        # The input is not echoed back: it may be large, and it is the client's own.
        return JSONResponse(
            {"detail": problems, "request_id": _request_id(request)}, status_code=422
        )

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        return JSONResponse(
            {"detail": error.detail, "request_id": _request_id(request)},
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        # Runs outside the request-id middleware (Starlette's outermost layer), so the
        # id is passed explicitly; the trace goes to the log, never to the client.
        request_id = _request_id(request)
        log.error(
            "unhandled error",
            exc_info=error,
            extra={"path": request.url.path, "request_id": request_id},
        )
        return JSONResponse(
            {"detail": "internal server error", "request_id": request_id},
            status_code=500,
            headers={"X-Request-ID": request_id} if request_id else None,
        )

    handlers: dict[Any, Any] = {
        ScorerError: scorer_error,
        RequestValidationError: validation_error,
        StarletteHTTPException: http_error,
        Exception: unexpected_error,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)
