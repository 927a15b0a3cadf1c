"""The scorer's error hierarchy. Each class carries its HTTP status; one handler in
``service.app`` turns any of them into a JSON body ``{"detail": ..., "request_id": ...}``.
Messages are written for the API's user: they never contain a stack trace."""

from __future__ import annotations

import math
import re
from http import HTTPStatus

from core.errors import ObjectNotFoundError, StorageError, TriageError


class ScorerError(Exception):
    """Base class: the message is the response's ``detail``."""

    status_code: int = HTTPStatus.INTERNAL_SERVER_ERROR
    headers: dict[str, str] | None = None


class ModelNotReadyError(ScorerError):
    """No verified model is loaded yet."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE


class ModelLoadError(ScorerError):
    """A reload was asked for and failed; the previous model keeps serving."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE


class StorageUnavailableError(ScorerError):
    """The storage refused a write whose loss the caller must know about (feedback)."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE


class LabelConflictError(ScorerError):
    """A feedback label for a request id that already has one (the first one wins)."""

    status_code = HTTPStatus.CONFLICT


class FeedbackForbiddenError(ScorerError):
    """A feedback feature that needs the admin key (labels with features, overwrites)."""

    status_code = HTTPStatus.FORBIDDEN


class RateLimitedError(ScorerError):
    """Too many requests from one client; ``Retry-After`` says when to come back."""

    status_code = HTTPStatus.TOO_MANY_REQUESTS

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}


class AuthenticationError(ScorerError):
    """Missing or wrong API key on an admin endpoint."""

    status_code = HTTPStatus.UNAUTHORIZED
    headers = {"WWW-Authenticate": "ApiKey"}  # noqa: RUF012 (read-only class constant)


class AdminDisabledError(ScorerError):
    """No API key is configured, so the admin endpoints are off."""

    status_code = HTTPStatus.FORBIDDEN


class RetrainDisabledError(ScorerError):
    """``SCORER_RETRAIN_MODE=disabled``."""

    status_code = HTTPStatus.FORBIDDEN


class RetrainConflictError(ScorerError):
    """A training run started by this scorer is still running."""

    status_code = HTTPStatus.CONFLICT


class RetrainLaunchError(ScorerError):
    """The training subprocess or Kubernetes Job could not be started."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE


class UnsupportedMediaTypeError(ScorerError):
    """A request body that is not ``application/json``."""

    status_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


_STORAGE_URL = re.compile(r"\b(?:s3|file|https?)://[^\s'\",;)]*")


def public_message(error: BaseException) -> str:
    """What a client may read about a failure: what is wrong, without the storage's
    endpoint, bucket or paths (the full message goes to the log). A storage failure
    says only that the storage failed; a storage URL in any other message is cut
    down to the file it names ("model.onnx: sha256 ... does not match")."""
    if isinstance(error, OSError) or (
        isinstance(error, StorageError) and not isinstance(error, ObjectNotFoundError)
    ):
        return "the model storage cannot be read (details in the scorer's log)"
    if not isinstance(error, TriageError | ScorerError):
        # Whatever else comes out of a model file or a runtime: its text is not
        # written for a client.
        return f"unexpected {type(error).__name__} (details in the scorer's log)"
    return _STORAGE_URL.sub(_file_name, str(error))


def _file_name(match: re.Match[str]) -> str:
    name = match.group(0).rstrip("/").rsplit("/", 1)[-1]
    return name if "." in name and "://" not in name and name else "the storage"
