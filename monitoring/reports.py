"""Writing a drift run's results through the storage layer, under
``reports/drift/<timestamp>/``: ``report.html`` for humans, ``snapshot.json``
(Evidently's metrics and tests) for machines, ``quality-<version>.{html,json}`` for
each version with labelled predictions (realised quality), and ``summary.json``,
written last, the
compact verdict that the CLI prints and dashboards link to.

The retrain cooldown is recorded next to them, in ``reports/drift/last-retrain.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core import layout
from core.errors import ObjectNotFoundError
from core.storage import Storage

REPORT_HTML = "report.html"
SNAPSHOT_JSON = "snapshot.json"
SUMMARY_JSON = "summary.json"
LAST_RETRAIN_KEY = f"{layout.DRIFT_REPORT_PREFIX}last-retrain.json"


@dataclass(frozen=True)
class ReportLocation:
    """Where one run's files go."""

    storage: Storage
    prefix: str

    @classmethod
    def for_run(cls, storage: Storage, when: datetime) -> ReportLocation:
        return cls(storage, layout.drift_report_prefix(when))

    @property
    def slug(self) -> str:
        """The run's timestamp, e.g. 20261125T193000123456Z (a valid label value)."""
        return self.prefix.rstrip("/").rsplit("/", 1)[-1]

    def url(self, filename: str) -> str:
        return self.storage.url_for(self.prefix + filename)

    def urls(self, *, with_evidently: bool) -> dict[str, str]:
        files = {"summary": SUMMARY_JSON}
        if with_evidently:
            files = {"html": REPORT_HTML, "snapshot": SNAPSHOT_JSON, **files}
        return {name: self.url(filename) for name, filename in files.items()}

    def write_evidently(self, html: str, snapshot_json: str) -> None:
        self.storage.write_bytes(
            self.prefix + REPORT_HTML, html.encode("utf-8"), content_type="text/html"
        )
        self.storage.write_bytes(
            self.prefix + SNAPSHOT_JSON,
            snapshot_json.encode("utf-8"),
            content_type="application/json",
        )

    def write_quality(self, version: str, html: str, snapshot_json: str) -> None:
        """A served version's realised-quality report (``monitoring/quality.py``)."""
        self.storage.write_bytes(
            self.prefix + quality_html(version), html.encode("utf-8"), content_type="text/html"
        )
        self.storage.write_bytes(
            self.prefix + quality_snapshot(version),
            snapshot_json.encode("utf-8"),
            content_type="application/json",
        )

    def write_summary(self, summary: dict[str, Any]) -> None:
        self.storage.write_bytes(
            self.prefix + SUMMARY_JSON, to_json(summary), content_type="application/json"
        )


def quality_html(version: str) -> str:
    return f"quality-{version}.html"


def quality_snapshot(version: str) -> str:
    return f"quality-{version}.json"


def to_json(data: Any) -> bytes:
    return json.dumps(data, indent=2, default=str, ensure_ascii=False).encode("utf-8")


def read_last_retrain(storage: Storage) -> dict[str, Any] | None:
    """The record of the last retrain a drift run started, or None if there was none
    (or the record is unreadable: then the cooldown cannot hold anything back)."""
    try:
        record: dict[str, Any] = json.loads(storage.read_bytes(LAST_RETRAIN_KEY))
    except ObjectNotFoundError:
        return None
    except ValueError:
        return None
    return record


def write_last_retrain(storage: Storage, record: dict[str, Any]) -> None:
    storage.write_bytes(LAST_RETRAIN_KEY, to_json(record), content_type="application/json")
