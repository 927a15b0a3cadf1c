"""The monitoring package's exceptions. Entry points turn them into a one-line message
and a non-zero exit code; the retrain errors live in :mod:`core.errors`."""

from __future__ import annotations

from core.errors import TriageError


class MonitoringError(TriageError):
    """Base class: the message is shown to the user as is, on one line.

    It derives from the project's hierarchy so one ``except TriageError`` in an entry
    point also covers the storage and registry errors the drift job runs into."""


class NoProductionModelError(MonitoringError):
    """There is no production model to compare the traffic with."""


class PushError(MonitoringError):
    """The Pushgateway refused the metrics or could not be reached."""
