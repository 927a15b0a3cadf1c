"""The monitoring package's exceptions. Entry points turn them into a one-line message
and a non-zero exit code; the scorer maps :class:`RetrainConflictError` to HTTP 409."""

from __future__ import annotations

from training.errors import TrainingError


class MonitoringError(TrainingError):
    """Base class: the message is shown to the user as is, on one line.

    It derives from the training hierarchy so one ``except TrainingError`` in an entry
    point also covers the storage and registry errors the drift job runs into."""


class NoProductionModelError(MonitoringError):
    """There is no production model to compare the traffic with."""


class PushError(MonitoringError):
    """The Pushgateway refused the metrics or could not be reached."""


class RetrainError(MonitoringError):
    """A retrain could not be started (API server refused, command failed to start)."""


class RetrainConflictError(MonitoringError):
    """A retrain is already under way: not a failure, nothing new was started."""

    def __init__(self, message: str, *, job_name: str) -> None:
        super().__init__(message)
        self.job_name = job_name


class RetrainAlreadyActiveError(RetrainConflictError):
    """A Job of the training CronJob is still running."""


class RetrainAlreadyTriggeredError(RetrainConflictError):
    """Another run created the Job of this drift window first (HTTP 409 AlreadyExists)."""
