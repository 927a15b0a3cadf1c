"""Request and response bodies. The feature model is generated from the contract, so a
new code or a changed range in ``core/contract.py`` changes the API (and its
OpenAPI document) with no edit here.

The feature model follows the JSON Schema it publishes: integer features (counts,
ranges and integer codes alike) take any number without a fractional part (``45`` and
``45.0``; ``45.5`` is refused), decimal ones take numbers, ``dep`` takes a string code
("33", "2A"); strings for numbers, numbers for ``dep``, booleans and unknown fields are
refused with 422. ``null`` or a left-out optional feature means "not
filled", as BAAC's -1.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    create_model,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from core import contract

Label = Literal["prioritaire", "non-prioritaire"]
Confidence = Literal["high", "medium", "low"]
Selection = Literal["pinned", "following"]
"""How the served version is chosen: fixed by SCORER_MODEL_VERSION, or the alias's."""

REQUEST_ID_MAX_LENGTH = 128
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
"""Accepted request ids (X-Request-ID header, feedback): they become log fields and
parquet values, so no spaces, quotes or control characters."""

# Meanings are listed in the field description when they fit; the department list is
# too long and is the INSEE list anyway.
_MAX_CODES_DESCRIBED = 40


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


_VERSION = "20261125t193000-1a2b3c4d"


def _describe(feature: contract.Feature) -> str:
    parts = [feature.description, f"Source: {feature.source}."]
    if feature.codes and len(feature.codes) <= _MAX_CODES_DESCRIBED:
        meanings = "; ".join(f"{code}: {meaning}" for code, meaning in feature.codes.items())
        parts.append(f"Codes: {meanings}.")
    if not feature.required:
        parts.append("Optional: null or absent means not filled.")
    return " ".join(parts)


class IntegralNumber:
    """An integer feature (a count, a range or an integer code) as JSON Schema defines
    an integer: any number with no fractional part, so ``45`` and ``45.0`` are 45
    (pandas writes integer columns with gaps as floats), ``45.5`` is refused, and so
    are booleans and strings. Built from pydantic-core validators only, run in Rust:
    a strict integer (the common case, and the fastest), else a strict number (which
    refuses ``true`` and ``"45"``) made an integer if it has no fractional part; then
    the range or the codes, each with its own message."""

    def __init__(self, feature: contract.Feature) -> None:
        self.minimum = None if feature.minimum is None else int(feature.minimum)
        self.maximum = None if feature.maximum is None else int(feature.maximum)
        self.codes = list(feature.codes) if feature.codes else None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        integral = core_schema.union_schema(
            [
                core_schema.int_schema(strict=True),
                core_schema.chain_schema(
                    [
                        core_schema.float_schema(strict=True, allow_inf_nan=False),
                        core_schema.int_schema(strict=False),
                    ]
                ),
            ],
            mode="left_to_right",
            custom_error_type="integer_type",
            custom_error_message="Input should be an integer (a number without a fractional part)",
        )
        allowed: core_schema.CoreSchema
        if self.codes is not None:
            allowed = core_schema.literal_schema(self.codes)
        else:
            allowed = core_schema.int_schema(strict=True, ge=self.minimum, le=self.maximum)
        return core_schema.chain_schema([integral, allowed])

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        published: dict[str, Any] = {"type": "integer"}
        if self.codes is not None:
            published["enum"] = self.codes
        if self.minimum is not None:
            published["minimum"] = self.minimum
        if self.maximum is not None:
            published["maximum"] = self.maximum
        return published


def _feature_type(feature: contract.Feature) -> Any:
    if feature.kind is contract.Kind.CATEGORICAL and feature.is_string_coded:
        # Strict: a department code is a string ("33", "2A"), never the number 33.
        return Literal[tuple(feature.codes)]
    if feature.kind is contract.Kind.CATEGORICAL or feature.integer:
        return Annotated[int, IntegralNumber(feature)]
    return Annotated[float, Field(ge=feature.minimum, le=feature.maximum, allow_inf_nan=False)]


def _feature_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for feature in contract.FEATURES:
        kind = _feature_type(feature)
        info = Field(description=_describe(feature), examples=[feature.example])
        if feature.required:
            fields[feature.name] = (kind, info)
        else:
            info = Field(None, description=_describe(feature), examples=[feature.example])
            fields[feature.name] = (kind | None, info)
    return fields


class _StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _FeaturesBase(_StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [contract.example_row()]})


AccidentFeatures: type[BaseModel] = create_model(
    "AccidentFeatures",
    __base__=_FeaturesBase,
    __doc__="One accident, described by the most severely hurt person, their vehicle, "
    "the place and the circumstances (BAAC codes).",
    **_feature_fields(),
)


def feature_row(features: BaseModel) -> dict[str, Any]:
    """The validated row as the contract's raw dict. ``__dict__`` holds exactly the
    declared fields (extra ones are forbidden), and costs nothing, unlike model_dump."""
    return features.__dict__


class Prediction(BaseModel):
    """The triage of one accident."""

    prediction: Literal[0, 1] = Field(description="1: prioritaire, 0: non-prioritaire.")
    label: Label = Field(description="The prediction's name.")
    probability: float = Field(
        ge=0, le=1, description="Model probability that the case is prioritaire."
    )
    confidence: Confidence = Field(
        description="Distance of the probability from the decision threshold: 'high' at "
        "0.3 or more, 'medium' at 0.15 or more, else 'low' (defaults; see "
        "SCORER_CONFIDENCE_*_MARGIN)."
    )
    model_version: str = Field(description="Registry version of the model that scored it.")
    request_id: str = Field(
        description="Id of this prediction, issued by the scorer ('<request id>-<row>' in "
        "a batch); send it back with POST /feedback. It equals the X-Request-ID header "
        "unless the client sent its own, which then only traces the request."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prediction": 1,
                    "label": "prioritaire",
                    "probability": 0.87,
                    "confidence": "high",
                    "model_version": "20261125t193000-1a2b3c4d",
                    "request_id": "5f0c2e7d9a8b4c3d",
                }
            ]
        }
    )


class BatchPrediction(BaseModel):
    """One prediction per input row, in the input's order."""

    model_config = _examples(
        {
            "model_version": _VERSION,
            "request_id": "5f0c2e7d",
            "predictions": [
                {
                    "prediction": 0,
                    "label": "non-prioritaire",
                    "probability": 0.12,
                    "confidence": "high",
                    "model_version": _VERSION,
                    "request_id": "5f0c2e7d-0",
                }
            ],
        }
    )

    model_version: str = Field(description="Version that scored every row of the batch.")
    request_id: str = Field(description="Id of the request; row i has '<request_id>-<i>'.")
    predictions: list[Prediction]


def batch_request_model(limit: int) -> type[BaseModel]:
    """The batch body, with the configured row limit in its schema."""
    return create_model(
        "BatchPredictionRequest",
        __base__=_StrictModel,
        __doc__=f"Up to {limit} accidents scored in one model call.",
        rows=(
            list[AccidentFeatures],
            Field(min_length=1, max_length=limit, description=f"1 to {limit} accidents."),
        ),
    )


class FeedbackRequest(_StrictModel):
    """The true severity of an accident scored earlier (by the request id of its
    prediction), or, with the admin key, of an accident given in full (its features)."""

    request_id: Annotated[str, Field(pattern=REQUEST_ID_PATTERN)] | None = Field(
        None,
        description="request_id of the prediction (a batch row's is '<request id>-<i>'). "
        "Required unless features are sent.",
    )
    label: Literal[0, 1] = Field(description="True class: 1 prioritaire, 0 non-prioritaire.")
    features: AccidentFeatures | None = Field(
        None,
        description="Admin key only: the accident's features, when the label is for a "
        "row that was not scored here (or to be independent of the inference log).",
    )
    overwrite: bool = Field(
        False,
        description="Admin key only: replace the label stored earlier for this request "
        "id (otherwise the first label wins and a second one gets 409).",
    )

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if self.request_id is None and self.features is None:
            raise ValueError("send a request_id, the features, or both")
        return self


class FeedbackReceipt(BaseModel):
    model_config = _examples(
        {
            "status": "stored",
            "request_id": "6b15ede05f0c2e7d9a8b4c3d1e2f3a4b5c6d7e8f",
            "label": "prioritaire",
        }
    )

    status: Literal["stored"] = "stored"
    request_id: str = Field(description="Request id the label is stored under.")
    label: Label


class Health(BaseModel):
    model_config = _examples({"status": "ok"})

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    model_config = _examples(
        {"status": "ready", "model_version": _VERSION, "detail": None},
        {"status": "not ready", "model_version": None, "detail": "loading"},
    )

    status: Literal["ready", "not ready"]
    model_version: str | None = None
    detail: str | None = None


class Stats(BaseModel):
    """Counts since this process started (per pod; Prometheus has the totals)."""

    model_config = _examples(
        {
            "started_at": "2026-11-25T19:30:00+00:00",
            "uptime_seconds": 3600.0,
            "predictions": 1200,
            "by_label": {"non-prioritaire": 900, "prioritaire": 300},
            "by_confidence": {"high": 700, "medium": 320, "low": 180},
            "by_model_version": {_VERSION: 1200},
        }
    )

    started_at: str
    uptime_seconds: float
    predictions: int
    by_label: dict[str, int]
    by_confidence: dict[str, int]
    by_model_version: dict[str, int]


class ReloadResult(BaseModel):
    model_config = _examples(
        {
            "status": "loaded",
            "version": _VERSION,
            "previous_version": "20261101t020000-9f8e7d6c",
            "load_seconds": 0.042,
            "selection": "following",
        }
    )

    status: Literal["loaded", "unchanged"]
    version: str
    selection: Selection = Field(
        description="'pinned': the version SCORER_MODEL_VERSION fixes was (re)loaded and "
        "the alias was not read; 'following': the alias's version."
    )
    previous_version: str | None = None
    load_seconds: float | None = None


class RetrainRequest(_StrictModel):
    reason: str = Field(
        "manual retrain via POST /retrain",
        max_length=200,
        description="Why; recorded on the Kubernetes Job and in the logs.",
    )


class RetrainAccepted(BaseModel):
    model_config = _examples(
        {
            "status": "accepted",
            "mode": "kubernetes",
            "run": "accident-triage-training-3f9a1c2b7e",
            "detail": "Job triage/accident-triage-training-3f9a1c2b7e created from CronJob "
            "accident-triage-training; a promoted version is picked up by the next alias poll",
        }
    )

    status: Literal["accepted"] = "accepted"
    mode: Literal["local", "kubernetes"]
    run: str = Field(description="The local run's process id or the Kubernetes Job name.")
    detail: str


class ErrorBody(BaseModel):
    model_config = _examples({"detail": "no model is loaded yet", "request_id": "5f0c2e7d"})

    detail: str
    request_id: str | None = None


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. body.agg_.")
    reason: str
    type: str


class ValidationErrorBody(BaseModel):
    model_config = _examples(
        {
            "detail": [
                {
                    "field": "body.agg_",
                    "reason": "Input should be 1 or 2",
                    "type": "literal_error",
                }
            ],
            "request_id": "5f0c2e7d",
        }
    )

    detail: list[FieldProblem]
    request_id: str | None = None


BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not JSON text (e.g. not UTF-8)."},
    413: {"model": ErrorBody, "description": "The body is over SCORER_MAX_BODY_BYTES."},
    415: {"model": ErrorBody, "description": "The body is not sent as application/json."},
    422: {"model": ValidationErrorBody, "description": "Invalid body: each field and why."},
}
"""Answers any endpoint that reads a JSON body may give, documented on each."""
