"""The one exception hierarchy of the project. Every role's errors derive from
:class:`TriageError`; entry points turn it into a one-line message and a non-zero exit
code, and the scorer into an HTTP status."""

from __future__ import annotations


class TriageError(Exception):
    """Base class: the message is shown to the user as is, on one line."""


class StorageError(TriageError):
    """The storage backend is unreachable, refused the credentials, or lacks a key."""


class ObjectNotFoundError(StorageError):
    """The key does not exist in the storage."""


class ObjectExistsError(StorageError):
    """A create-if-absent write found the key taken: another writer created it first."""


class RegistryError(TriageError):
    """The model registry is inconsistent or an artifact failed verification."""


class ArtifactVerificationError(RegistryError):
    """A model file's checksum or a manifest's contract does not match."""


class PromotionConflictError(RegistryError):
    """Another promotion moved the alias first (or it no longer names the version the
    caller judged against): this one did not happen."""


class RetrainClaimedError(TriageError):
    """Another trigger already claimed the retrain of this model for this decision
    window: nothing new is started. ``holder`` describes who, when it could be read."""

    def __init__(self, message: str, *, key: str, holder: dict[str, object] | None) -> None:
        super().__init__(message)
        self.key = key
        self.holder = holder


class RetrainError(TriageError):
    """A retrain could not be started (API server refused, command failed to start)."""


class RetrainConflictError(RetrainError):
    """A retrain is already under way: not a failure, nothing new was started."""

    def __init__(self, message: str, *, job_name: str) -> None:
        super().__init__(message)
        self.job_name = job_name


class RetrainAlreadyActiveError(RetrainConflictError):
    """A Job of the training CronJob is still running."""


class RetrainAlreadyTriggeredError(RetrainConflictError):
    """Another run created the Job of this drift window first (HTTP 409 AlreadyExists)."""
