"""The training role's exceptions, on top of :mod:`core.errors`."""

from __future__ import annotations

from core.errors import TriageError


class TrainingError(TriageError):
    """A training step failed: the message is shown to the user as is, on one line."""


class BaacFormatError(TrainingError):
    """A BAAC table is missing, unreadable or not in a known layout."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class DownloadError(TrainingError):
    """The official BAAC files could not be fetched."""
