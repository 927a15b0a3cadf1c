"""``POST /predict``, ``POST /predict/batch`` and ``POST /feedback``.

The scoring handlers are ``async def``: the model call takes tens of microseconds,
less than a thread-pool hand-off (see docs/scorer.md, "Speed"). They skip FastAPI's
dependency resolution and its response re-validation, two of the largest costs of a
request, by reading the state through ``service.dependencies``' plain functions and
returning a ready JSONResponse (``response_model`` still documents the body). The
model is read once per request, so a hot swap cannot mix two versions in one answer.

No ``from __future__ import annotations`` here: the batch body type is a closure
variable, and FastAPI must see the real type, not a string it cannot resolve.
"""

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from core import contract
from core.tables import FeedbackLabel
from service.dependencies import (
    IssuedIdDep,
    OptionalAdminDep,
    StateDep,
    issued_id_of,
    scorer_state,
    serving_model,
)
from service.errors import FeedbackForbiddenError, RateLimitedError
from service.json_body import FastJSONResponse, parse_json_body, request_body_doc
from service.metrics import LABELS
from service.schemas import (
    BODY_ERRORS,
    AccidentFeatures,
    BatchPrediction,
    ErrorBody,
    FeedbackReceipt,
    FeedbackRequest,
    Prediction,
    ValidationErrorBody,
    feature_row,
)

_EXAMPLE = contract.example_row()
_PEDESTRIAN = {
    **_EXAMPLE,
    "nb_pedestrians": 1,
    "nb_victim": 2,
    "nb_vehicules": 1,
    "oldest_age": 78,
    "youngest_age": 45,
    "any_unrestrained": None,
    "col": 6,
    "lum": 3,
    "vma": 90,
}
_MINIMAL = {f.name: f.example for f in contract.FEATURES if f.required}

_ERRORS: dict[int | str, dict[str, Any]] = {
    **BODY_ERRORS,
    503: {"model": ErrorBody, "description": "No model loaded yet."},
}


class _PlainRoute(Route):
    """A Starlette route that, like FastAPI's, records itself as ``scope["route"]``
    (FastAPI's router does not for plain routes): error handlers label metrics with
    its path."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


@dataclass(frozen=True)
class InferenceRoutes:
    router: APIRouter
    """Every inference endpoint as a FastAPI route: the OpenAPI document, and the
    fallback path for the scoring endpoints."""
    fast_routes: list[BaseRoute]
    """The two scoring endpoints again, same functions, as plain Starlette routes the
    app puts in front of the router (``service.app``)."""


def build_routes(batch_request: type[BaseModel], batch_limit: int) -> InferenceRoutes:
    """Needs the app's batch model, whose schema carries the row limit.

    Why the scoring endpoints are registered twice: a FastAPI route costs about 65
    microseconds more per request than a Starlette route for the same endpoint
    (dependency solving, telemetry, response handling), a fifth of a scored
    request's time. These handlers use none of it (they take the bare Request,
    parse their body themselves and return a ready Response), so the app routes
    their requests through plain routes placed first, while the FastAPI routes
    behind them, never reached for these paths, keep generating the documentation.
    """
    router = APIRouter(tags=["inference"])

    @router.post(
        "/predict",
        response_model=Prediction,
        summary="Triage one accident",
        responses=_ERRORS,
        openapi_extra=request_body_doc(
            AccidentFeatures,
            {
                "car": {"summary": "Car driver, all features", "value": _EXAMPLE},
                "pedestrian": {"summary": "Elderly pedestrian at night", "value": _PEDESTRIAN},
                "minimal": {"summary": "Required features only", "value": _MINIMAL},
            },
        ),
    )
    async def predict(request: Request) -> Response:
        """Scores one accident: `prediction` 1 (`prioritaire`: a victim killed or
        hospitalised) or 0, the probability, and a confidence tier."""
        features = parse_json_body(AccidentFeatures, await request.body())
        state = scorer_state(request)
        loaded = serving_model(state)
        result = await state.scorer.score_one(loaded, feature_row(features), issued_id_of(request))
        return FastJSONResponse(result)

    @router.post(
        "/predict/batch",
        response_model=BatchPrediction,
        summary=f"Triage up to {batch_limit} accidents",
        responses=_ERRORS,
        openapi_extra=request_body_doc(
            batch_request,
            {"two": {"summary": "Two accidents", "value": {"rows": [_EXAMPLE, _PEDESTRIAN]}}},
        ),
    )
    async def predict_batch(request: Request) -> Response:
        """Scores every row with one model call. Row `i` gets the id
        `<request_id>-<i>`, to use with POST /feedback."""
        body = parse_json_body(batch_request, await request.body())
        state = scorer_state(request)
        loaded = serving_model(state)
        request_id = issued_id_of(request)
        rows = [feature_row(row) for row in body.rows]  # type: ignore[attr-defined]
        predictions = await state.scorer.score_many(loaded, rows, request_id)
        return FastJSONResponse(
            {"model_version": loaded.version, "request_id": request_id, "predictions": predictions}
        )

    @router.post(
        "/feedback",
        response_model=FeedbackReceipt,
        summary="Send the true severity of an accident",
        responses={
            **BODY_ERRORS,
            401: {"model": ErrorBody, "description": "Wrong API key."},
            403: {"model": ErrorBody, "description": "Features or overwrite without the key."},
            409: {"model": ErrorBody, "description": "This request id already has a label."},
            422: {
                "model": ValidationErrorBody,
                "description": "Invalid body, or a request id this scorer did not issue.",
            },
            429: {"model": ErrorBody, "description": "Too many labels; see Retry-After."},
            503: {"model": ErrorBody, "description": "Storage slow or down: NOT stored."},
        },
    )
    async def feedback(
        request: Request,
        body: Annotated[
            FeedbackRequest,
            Body(
                openapi_examples={
                    "by_request_id": {
                        "summary": "Label for an earlier prediction",
                        "value": {
                            "request_id": "6b15ede05f0c2e7d9a8b4c3d1e2f3a4b5c6d7e8f",
                            "label": 1,
                        },
                    },
                    "with_features": {
                        "summary": "Label for an accident given in full (admin key)",
                        "value": {"label": 0, "features": _EXAMPLE},
                    },
                }
            ),
        ],
        state: StateDep,
        issued_id: IssuedIdDep,
        admin: OptionalAdminDep,
    ) -> dict[str, Any]:
        """Stores the label for the next training run, once: a label is accepted for
        the `request_id` of a prediction this scorer made (a batch row's is
        `<request_id>-<i>`), and the first label of an id wins. With the admin key
        (X-API-Key) a label may come with the accident's features (then
        `request_id` may be left out) or replace an earlier one (`"overwrite": true`)."""
        if not admin:
            client = request.client.host if request.client else "unknown"
            retry_after = state.feedback_limiter.take(client)
            if retry_after is not None:
                raise RateLimitedError(
                    f"too many feedback labels from {client}: at most "
                    f"{state.settings.feedback_rate_per_second:g} a second "
                    f"(bursts of {state.settings.feedback_burst})",
                    retry_after,
                )
            if body.features is not None or body.overwrite:
                raise FeedbackForbiddenError(
                    "labels with features and overwrites need the admin key (X-API-Key); "
                    "send the request_id of the prediction instead"
                )
        labelled_id = body.request_id or issued_id
        if not admin and not state.request_ids.issued(labelled_id):
            # A field problem like any other, in the same shape as the other 422s.
            raise RequestValidationError(
                [
                    {
                        "type": "request_id_not_issued",
                        "loc": ("body", "request_id"),
                        "msg": f"request id {labelled_id!r} was not issued by this scorer: "
                        "send the request_id of a prediction (a batch row's is "
                        "'<request_id>-<i>')",
                    }
                ]
            )
        label = FeedbackLabel(
            request_id=labelled_id,
            label=body.label,
            features=None if body.features is None else feature_row(body.features),
            overwrite=body.overwrite,
            received_at=time.time(),
        )
        await state.feedback.store(label)
        return {"request_id": labelled_id, "label": LABELS[body.label]}

    fast_routes: list[BaseRoute] = [
        _PlainRoute("/predict", predict, methods=["POST"], include_in_schema=False),
        _PlainRoute("/predict/batch", predict_batch, methods=["POST"], include_in_schema=False),
    ]
    return InferenceRoutes(router, fast_routes)
