"""The tools' failures: part of the one hierarchy, so the command line turns them into
one line and an exit code like every other command of the project."""

from __future__ import annotations

from core.errors import TriageError


class ToolError(TriageError):
    """A tool (the demo, the simulator) cannot go on: the message says why."""


class ServerStartError(ToolError):
    """A server process exited, or did not answer, before it was ready."""
