"""One exception hierarchy for the training package; entry points turn it into a
one-line message and a non-zero exit code."""

from __future__ import annotations


class TrainingError(Exception):
    """Base class: the message is shown to the user as is, on one line."""


class BaacFormatError(TrainingError):
    """A BAAC table is missing, unreadable or not in a known layout."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class DownloadError(TrainingError):
    """The official BAAC files could not be fetched."""


class StorageError(TrainingError):
    """The storage backend is unreachable, refused the credentials, or lacks a key."""


class ObjectNotFoundError(StorageError):
    """The key does not exist in the storage."""


class ObjectExistsError(StorageError):
    """A create-if-absent write found the key taken: another writer created it first."""


class RegistryError(TrainingError):
    """The model registry is inconsistent or an artifact failed verification."""


class ArtifactVerificationError(RegistryError):
    """A model file's checksum or a manifest's contract does not match."""


class PromotionConflictError(RegistryError):
    """Another promotion moved the alias first (or it no longer names the version the
    caller judged against): this one did not happen."""


class RetrainClaimedError(TrainingError):
    """Another trigger already claimed the retrain of this model for this decision
    window: nothing new is started. ``holder`` describes who, when it could be read."""

    def __init__(self, message: str, *, key: str, holder: dict[str, object] | None) -> None:
        super().__init__(message)
        self.key = key
        self.holder = holder
