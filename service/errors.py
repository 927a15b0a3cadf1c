"""The scorer's error hierarchy. Each class carries its HTTP status; one handler in
``service.app`` turns any of them into a JSON body ``{"detail": ..., "request_id": ...}``.
Messages are written for the API's user: they never contain a stack trace."""

from __future__ import annotations

from http import HTTPStatus


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
