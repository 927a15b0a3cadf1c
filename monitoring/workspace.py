"""Every run's Evidently snapshot, also stored in a project of an Evidently UI, so a
person opens a report in a browser instead of downloading an HTML file from the object
store; the project's dashboard draws the drift share (and, once quality runs store
theirs, the model's quality) over time.

The job reaches the UI through its HTTP API (``evidently ui``): the UI's pod owns its
volume and a job needs no shared volume. One call stores a snapshot::

    record = store_snapshot(settings, SnapshotKind.DRIFT, snapshot, run_id=slug)

It returns what goes in the run's summary: ``None`` when no UI is set, the project,
snapshot and report URL when stored, ``{"error": ...}`` when storing failed. A failure
is logged and never fails the run: the report is in the object store either way.

**Bounded.** The UI keeps every snapshot of a project in memory, so a project keeps the
newest ``evidently_ui_max_runs`` runs of each kind; a run deletes the older ones.

**One project, whatever the concurrency.** The UI has no "create if absent", so two
runs that both find no project would both create one. The project's id is therefore
derived from its name (a UUID 5): every run creates, or finds, the same project, and
two creations write the same project twice. The dashboard's panels get derived ids
for the same reason.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from monitoring.errors import MonitoringError
from monitoring.settings import MonitoringSettings

if TYPE_CHECKING:
    from evidently.core.report import Snapshot
    from evidently.sdk.models import DashboardModel, DashboardPanelPlot

log = logging.getLogger(__name__)

# Namespace of the project ids: uuid5(PROJECT_NAMESPACE, project name).
PROJECT_NAMESPACE = uuid.UUID("6f1d7a52-3b8e-4c43-9a5e-0c2f61a7e0d4")
# The header `evidently ui --secret` checks on its write API.
SECRET_HEADER = "evidently-secret"  # noqa: S105 (a header name)


class SnapshotKind(StrEnum):
    """What a snapshot reports; its tag in the project, which the panels filter on."""

    DRIFT = "drift"
    QUALITY = "quality"


class WorkspaceError(MonitoringError):
    """The Evidently UI could not be reached, or refused a call."""


def project_id(name: str) -> uuid.UUID:
    """The id of the project called ``name``: the same in every run and every pod."""
    return uuid.uuid5(PROJECT_NAMESPACE, name)


def report_url(base_url: str, project: uuid.UUID | str, snapshot: uuid.UUID | str) -> str:
    """The UI's page of one stored snapshot."""
    return f"{base_url.rstrip('/')}/projects/{project}/reports/{snapshot}"


def _panels(project: uuid.UUID, kind: SnapshotKind) -> list[DashboardPanelPlot]:
    """The dashboard panels of one kind of snapshot. A panel of a kind appears once a
    snapshot of that kind is stored: no empty quality panel before quality runs."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import counter_panel, line_plot_panel

    def panel_id(title: str) -> uuid.UUID:
        return uuid.uuid5(project, title)

    if kind is SnapshotKind.DRIFT:
        share = PanelMetric(
            legend="share of drifted features",
            tags=[kind.value],
            metric="DriftedColumnsCount",
            metric_labels={"value_type": "share"},
        )
        panels = [
            counter_panel("Drift share, last run", [share], size="half"),
            line_plot_panel(
                "Share of drifted features",
                [share],
                description="Dataset drift when it reaches the drift_share setting.",
                size="half",
            ),
        ]
    else:
        panels = [
            line_plot_panel(
                "Model quality from feedback labels",
                [
                    PanelMetric(legend=metric, tags=[kind.value], metric=metric)
                    for metric in ("Accuracy", "Precision", "Recall", "F1Score", "RocAuc")
                ],
                size="full",
            )
        ]
    for panel in panels:
        panel.id = panel_id(panel.title)
    return panels


class EvidentlyUi:
    """The few calls of the UI's HTTP API the jobs need, each with a timeout (the
    SDK's ``RemoteWorkspace`` has none: a silent UI would hang the job)."""

    def __init__(self, base_url: str, *, secret: str | None = None, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.timeout = timeout

    def _call(self, method: str, path: str, body: bytes | None = None) -> Any:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.secret:
            headers[SECRET_HEADER] = self.secret
        # The settings accept http(s) URLs only.
        request = urllib.request.Request(  # noqa: S310
            self.base_url + path, data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", errors="replace")[:300]
            raise _HttpStatusError(
                f"the Evidently UI at {self.base_url} answered {method} {path} with "
                f"HTTP {error.code}: {detail}",
                status=error.code,
            ) from error
        except (OSError, TimeoutError) as error:  # URLError, refused, timed out
            raise WorkspaceError(
                f"cannot reach the Evidently UI at {self.base_url}: {error}"
            ) from error
        try:
            return json.loads(payload) if payload else None
        except ValueError as error:
            raise WorkspaceError(
                f"the Evidently UI at {self.base_url} answered {method} {path} with "
                f"something other than JSON"
            ) from error

    def find_project(self, project: uuid.UUID) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._call("GET", f"/api/projects/{project}/info")
        except _HttpStatusError as error:
            if error.status == 404:
                return None
            raise
        return found

    def ensure_project(self, name: str) -> uuid.UUID:
        """The project called ``name``, created when absent (see the module's doc)."""
        from evidently.sdk.models import ProjectModel

        project = project_id(name)
        if self.find_project(project) is None:
            model = ProjectModel(
                id=project,
                name=name,
                description="Drift and quality runs of the accident-triage model.",
            )
            self._call("POST", "/api/v2/projects", model.json().encode("utf-8"))
            log.info("Evidently project created", extra={"project": name, "id": str(project)})
        return project

    def dashboard(self, project: uuid.UUID) -> DashboardModel:
        from evidently._pydantic_compat import parse_obj_as
        from evidently.sdk.models import DashboardModel

        model: DashboardModel = parse_obj_as(
            DashboardModel, self._call("GET", f"/api/v2/dashboards/{project}")
        )
        return model

    def ensure_panels(self, project: uuid.UUID, kind: SnapshotKind) -> None:
        """Add the kind's panels the dashboard lacks; keep every other panel (a
        person's own included)."""
        dashboard = self.dashboard(project)
        present = {panel.id for panel in dashboard.panels}
        missing = [panel for panel in _panels(project, kind) if panel.id not in present]
        if not missing:
            return
        dashboard.panels.extend(missing)
        # The UI shows the panels of its one tab (it refuses a second) or, without a
        # tab, all of them.
        if dashboard.tabs:
            dashboard.tabs[0].panels.extend(panel.id for panel in missing)
        self._call("POST", f"/api/v2/dashboards/{project}", dashboard.json().encode("utf-8"))

    def add_snapshot(
        self,
        project: uuid.UUID,
        snapshot: Snapshot,
        *,
        name: str,
        tags: list[str],
        metadata: Mapping[str, str],
        timestamp: datetime | None = None,
    ) -> uuid.UUID:
        from evidently.legacy.utils import NumpyEncoder

        model = snapshot.to_snapshot_model()
        model.name = name
        model.tags = sorted({*model.tags, *tags})
        model.metadata = {**model.metadata, **metadata}
        if timestamp is not None:
            # The UI stores naive times and draws them as they are: UTC, as the run ids.
            model.timestamp = timestamp.astimezone(UTC).replace(tzinfo=None)
        body = json.dumps(model.dict(), cls=NumpyEncoder, allow_nan=True).encode("utf-8")
        answer = self._call("POST", f"/api/v2/snapshots/{project}", body)
        try:
            return uuid.UUID(str(answer["snapshot_id"]))
        except (KeyError, TypeError, ValueError) as error:
            raise WorkspaceError(
                f"the Evidently UI at {self.base_url} stored a snapshot without saying its id"
            ) from error

    def prune(self, project: uuid.UUID, kind: SnapshotKind, *, keep: int) -> int:
        """Delete the project's oldest snapshots of ``kind`` beyond the newest ``keep``;
        returns how many. Two runs pruning at once delete the same ones: deleting a
        snapshot that is already gone is no error."""
        listed = self._call("GET", f"/api/projects/{project}/snapshots")
        runs = sorted(
            (s for s in listed if kind.value in s.get("tags", [])),
            key=lambda s: (str(s["timestamp"]), str(s["id"])),
        )
        old = runs[: max(len(runs) - keep, 0)]
        for snapshot in old:
            self._call("DELETE", f"/api/projects/{project}/{snapshot['id']}")
        return len(old)


class _HttpStatusError(WorkspaceError):
    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.status = status


def store_snapshot(
    settings: MonitoringSettings,
    kind: SnapshotKind,
    snapshot: Snapshot,
    *,
    run_id: str,
    metadata: Mapping[str, str] | None = None,
    timestamp: datetime | None = None,
) -> dict[str, Any] | None:
    """Store one run's snapshot in the project (tagged with its kind, named and
    labelled with ``run_id``, the run's report folder; dated ``timestamp``, the run's
    time, rather than when the report was computed); see the module's doc for what it
    returns. Never raises for the UI's sake."""
    if not settings.evidently_ui_url:
        return None
    secret = settings.evidently_ui_secret
    ui = EvidentlyUi(
        settings.evidently_ui_url,
        secret=secret.get_secret_value() if secret else None,
        timeout=settings.evidently_ui_timeout_seconds,
    )
    try:
        project = ui.ensure_project(settings.evidently_ui_project)
        ui.ensure_panels(project, kind)
        snapshot_id = ui.add_snapshot(
            project,
            snapshot,
            name=f"{kind.value} {run_id}",
            tags=[kind.value],
            metadata={**(metadata or {}), "kind": kind.value, "run_id": run_id},
            timestamp=timestamp,
        )
    except WorkspaceError as error:
        log.error("the snapshot was not stored in the Evidently UI", extra={"error": str(error)})
        return {"stored": False, "run_id": run_id, "error": str(error)}
    url = report_url(ui.base_url, project, snapshot_id)
    log.info("snapshot stored in the Evidently UI", extra={"kind": kind.value, "url": url})
    record: dict[str, Any] = {
        "stored": True,
        "run_id": run_id,
        "project_id": str(project),
        "snapshot_id": str(snapshot_id),
        "url": url,
    }
    try:
        record["pruned"] = ui.prune(project, kind, keep=settings.evidently_ui_max_runs)
    except WorkspaceError as error:
        # Stored all the same; the next run prunes again.
        log.warning("old snapshots were not pruned", extra={"error": str(error)})
        record["prune_error"] = str(error)
    return record
