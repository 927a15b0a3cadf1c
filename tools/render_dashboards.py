"""Render the Grafana dashboards of ``grafana/dashboards/`` to PNG with matplotlib, from
the data of a live Prometheus, so users can see what they will get before installing
(no Grafana server needed).

    python -m tools render-dashboards --prometheus http://127.0.0.1:9090 --minutes 5

Every panel is drawn where its ``gridPos`` puts it: time series and bars from range
queries, stats and tables from instant queries, the probability heatmap from its
histogram buckets, text panels as text. Dashboard variables are set to "All"
(``$namespace`` and ``$pod`` become ``.*``). ``tests/grafana/test_dashboards_live.py``
runs this against its test stack when ``TRIAGE_RENDER_DASHBOARDS`` is set; the
committed images in ``docs/dashboards/`` come from there.

Needs matplotlib (``pip install matplotlib``), which is not a dependency of any role.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
import textwrap
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator

# Grafana's dark theme, roughly.
BACKGROUND = "#111217"
PANEL = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
MUTED = "#8e8e8e"
PALETTE = [
    "#73bf69",
    "#f2cc0c",
    "#8ab8ff",
    "#ff780a",
    "#f2495c",
    "#5794f2",
    "#b877d9",
    "#705da0",
    "#37872d",
    "#fade2a",
    "#447ebc",
    "#c15c17",
    "#890f02",
    "#0a437c",
]
COLORS = {
    "green": "#73bf69",
    "red": "#f2495c",
    "orange": "#ff9830",
    "blue": "#5794f2",
    "yellow": "#fade2a",
    "transparent": "none",
    "dark-orange": "#fa6400",
}

Box = tuple[float, float, float, float]
"""left, bottom, width, height, in figure fractions"""

UNIT_HEIGHT_INCHES = 0.36
WIDTH_INCHES = 18.0
PAD = 0.004


# --- Prometheus ------------------------------------------------------------------------


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}?{query}"
        with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 (our URL)
            body = json.load(answer)
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body}")
        return body["data"]

    def instant(self, expr: str, at: float) -> list[dict[str, Any]]:
        data = self._get("query", query=expr, time=str(at))
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        data = self._get(
            "query_range", query=expr, start=str(start), end=str(end), step=f"{step:g}"
        )
        return list(data["result"])


def substitute(expr: str, values: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), expr
    )


# --- formatting --------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


def formatter(unit: str, decimals: int | None) -> Callable[[float], str]:
    def number(value: float) -> str:
        if decimals is not None:
            return f"{value:,.{decimals}f}"
        if value != 0 and (abs(value) >= 10_000 or abs(value) < 0.01):
            return f"{value:.3g}"
        return f"{value:,.2f}".rstrip("0").rstrip(".")

    if unit == "percentunit":
        places = 1 if decimals is None else max(decimals - 2, 0)
        return lambda v: f"{v * 100:.{places}f}%"
    if unit == "s":
        return _duration
    if unit == "bytes":
        return lambda v: f"{v / 2**20:.0f} MiB"
    if unit == "reqps":
        return lambda v: f"{number(v)} req/s"
    if unit.startswith("suffix:"):
        suffix = unit.removeprefix("suffix:").strip()
        return lambda v: f"{number(v)} {suffix}"
    return number


def legend(fmt: str, labels: dict[str, str]) -> str:
    if not fmt or fmt == "__auto":
        shown = {k: v for k, v in labels.items() if k != "__name__"}
        return ", ".join(f"{k}={v}" for k, v in shown.items()) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)


def threshold_color(value: float, defaults: dict[str, Any]) -> str | None:
    for mapping in defaults.get("mappings", []):
        option = mapping.get("options", {}).get(_mapping_key(value))
        if option is not None:
            return COLORS.get(option.get("color", ""), option.get("color"))
    steps = defaults.get("thresholds", {}).get("steps", [])
    color = None
    for step in steps:
        if step["value"] is None or value >= step["value"]:
            color = step["color"]
    return COLORS.get(color or "", color)


def _mapping_key(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def mapped_text(value: float, defaults: dict[str, Any]) -> str | None:
    for mapping in defaults.get("mappings", []):
        option = mapping.get("options", {}).get(_mapping_key(value))
        if option is not None:
            return str(option["text"])
    return None


# --- panels ----------------------------------------------------------------------------


class Renderer:
    def __init__(self, prometheus: Prometheus, start: float, end: float, step: float) -> None:
        self.prometheus = prometheus
        self.start, self.end, self.step = start, end, step
        self.legend_columns = 4
        self.max_ticks = 8
        rate_interval = max(4 * step, 20.0)
        self.variables = {
            "namespace": ".*",
            "pod": ".*",
            "__rate_interval": f"{rate_interval:.0f}s",
            "__interval": f"{step:.0f}s",
            "__range": f"{end - start:.0f}s",
        }

    def use_dashboard(self, dashboard: dict[str, Any]) -> None:
        """Take the defaults of the dashboard's free-text variables (text panels show them)."""
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") in ("textbox", "constant"):
                self.variables[variable["name"]] = str(variable.get("query", ""))

    def expr(self, target: dict[str, Any]) -> str:
        return substitute(target["expr"], self.variables)

    def draw(self, figure: Figure, panel: dict[str, Any], rows: int) -> None:
        grid = panel["gridPos"]
        height_inches = rows * UNIT_HEIGHT_INCHES

        def fx(inches: float) -> float:
            return inches / WIDTH_INCHES

        def fy(inches: float) -> float:
            return inches / height_inches

        left = grid["x"] / 24 + PAD
        width = grid["w"] / 24 - 2 * PAD
        top = 1 - grid["y"] / rows
        height = grid["h"] / rows
        if panel["type"] == "row":
            figure.text(
                left,
                top - height / 2,
                panel["title"],
                color=TEXT,
                fontsize=13,
                fontweight="bold",
                va="center",
            )
            return
        bottom = top - height + fy(0.04)
        height -= fy(0.08)
        frame = figure.add_axes((left, bottom, width, height))
        frame.set_facecolor(PANEL)
        frame.set_xticks([])
        frame.set_yticks([])
        for spine in frame.spines.values():
            spine.set_color(BORDER)
        figure.text(
            left + fx(0.08),
            bottom + height - fy(0.06),
            panel["title"],
            color=TEXT,
            fontsize=10,
            fontweight="bold",
            va="top",
        )
        title = fy(0.34)
        if panel["type"] in ("timeseries", "heatmap"):
            legend_right = panel.get("options", {}).get("legend", {}).get("placement") == "right"
            self.legend_columns = max(1, grid["w"] // 3)
            self.max_ticks = max(3, grid["w"] // 2)
            below = 0.0 if panel["type"] == "heatmap" or legend_right else 0.3
            inner = (
                left + fx(0.75),
                bottom + fy(0.3 + below),
                width - fx(0.9 + (1.9 if legend_right else 0.0)),
                height - title - fy(0.35 + below),
            )
        else:
            inner = (left + fx(0.05), bottom + fy(0.05), width - fx(0.1), height - title - fy(0.1))
        draw = {
            "timeseries": self.timeseries,
            "stat": self.stat,
            "table": self.table,
            "heatmap": self.heatmap,
            "text": self.text,
        }[panel["type"]]
        try:
            drawn = draw(figure, inner, panel)
        except Exception as error:  # a broken panel must not hide the others
            drawn = False
            print(f"  {panel['title']}: {error}", file=sys.stderr)
        if not drawn:
            note = "No data"
            first = panel.get("description", "").split(".")[0]
            if first.startswith("Needs "):
                note += f"\n{first}"
            frame.text(
                0.5,
                0.45,
                note,
                transform=frame.transAxes,
                color=MUTED,
                fontsize=10,
                ha="center",
                va="center",
            )

    def _axes(self, figure: Figure, box: Box) -> Axes:
        ax = figure.add_axes(box)
        ax.set_facecolor(PANEL)
        ax.tick_params(colors=MUTED, labelsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        for side in ("left", "bottom"):
            ax.spines[side].set_color(BORDER)
        ax.grid(color=BORDER, linewidth=0.5)
        short = self.end - self.start <= 900
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S" if short else "%H:%M", tz=UTC))
        ax.xaxis.set_major_locator(_time_locator(self.end - self.start, self.max_ticks))
        ax.set_xlim(*_dates([self.start, self.end]))
        return ax

    def timeseries(self, figure: Figure, box: Box, panel: dict[str, Any]) -> bool:
        defaults = panel["fieldConfig"]["defaults"]
        custom = defaults.get("custom", {})
        series = []
        for target in panel["targets"]:
            for result in self.prometheus.range(self.expr(target), self.start, self.end, self.step):
                points = [(float(t), float(v)) for t, v in result["values"]]
                points = [(t, v) for t, v in points if math.isfinite(v)]
                if points:
                    series.append(
                        (legend(target.get("legendFormat", ""), result["metric"]), points)
                    )
        if not series:
            return False
        ax = self._axes(figure, box)
        stacking = custom.get("stacking", {}).get("mode", "none")
        bars = custom.get("drawStyle") == "bars"
        overrides = _override_colors(panel)
        if stacking in ("normal", "percent"):
            times = sorted({t for _, points in series for t, _ in points})
            values = [[dict(points).get(t, 0.0) for t in times] for _, points in series]
            if stacking == "percent":
                totals = [sum(column) or 1.0 for column in zip(*values, strict=True)]
                values = [
                    [v / total for v, total in zip(row, totals, strict=True)] for row in values
                ]
            colors = [
                overrides.get(name, PALETTE[i % len(PALETTE)]) for i, (name, _) in enumerate(series)
            ]
            ax.stackplot(
                _dates(times),
                values,
                labels=[n for n, _ in series],
                colors=colors,
                alpha=0.8,
                step="post" if bars else None,
            )
            if stacking == "percent":
                defaults = {**defaults, "unit": "percentunit", "max": 1}
        else:
            log_scale = custom.get("scaleDistribution", {}).get("type") == "log"
            for i, (name, points) in enumerate(series):
                color = overrides.get(name, PALETTE[i % len(PALETTE)])
                xs, ys = _dates(t for t, _ in points), [v for _, v in points]
                if bars:
                    ax.vlines(xs, 0, ys, colors=color, linewidth=1.5, label=name)
                else:
                    ax.plot(xs, ys, color=color, linewidth=1.2, label=name)
                    if not log_scale:
                        ax.fill_between(xs, ys, color=color, alpha=0.08)
        steps = defaults.get("thresholds", {}).get("steps", [])
        if custom.get("thresholdsStyle", {}).get("mode") == "line":
            for step in steps:
                if step["value"] is not None:
                    ax.axhline(step["value"], color=COLORS["red"], linestyle="--", linewidth=1)
        fmt = formatter(defaults.get("unit", "short"), defaults.get("decimals"))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
        if defaults.get("decimals") == 0:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        if custom.get("scaleDistribution", {}).get("type") == "log":
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        else:
            bottom, top = ax.get_ylim()
            ax.set_ylim(defaults.get("min", min(bottom, 0)), defaults.get("max", max(top, 1e-9)))
            if defaults.get("decimals") == 0 and top < 1:
                ax.set_ylim(0, 1)
        options = panel.get("options", {}).get("legend", {})
        right = options.get("placement") == "right"
        handles, labels = ax.get_legend_handles_labels()
        if right:
            pairs = sorted(zip(labels, handles, strict=True), key=lambda pair: pair[0])[:14]
            labels, handles = [label for label, _ in pairs], [handle for _, handle in pairs]
        ax.legend(
            handles,
            labels,
            fontsize=7,
            frameon=False,
            labelcolor=TEXT,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0) if right else (0.0, -0.12),
            # At most two rows below the plot: the panel has room for no more.
            ncol=1 if right else min(len(labels), max(self.legend_columns, -(-len(labels) // 2))),
            handlelength=1.2,
            columnspacing=1.0,
        )
        return True

    def stat(self, figure: Figure, box: Box, panel: dict[str, Any]) -> bool:
        defaults = panel["fieldConfig"]["defaults"]
        fmt = formatter(defaults.get("unit", "short"), defaults.get("decimals"))
        values = []
        for target in panel["targets"]:
            for result in self.prometheus.instant(self.expr(target), self.end):
                value = float(result["value"][1])
                if math.isfinite(value):
                    values.append(value)
        if not values:
            return False
        value = values[0]
        text = mapped_text(value, defaults) or fmt(value)
        ax = figure.add_axes(box)
        ax.set_axis_off()
        color = threshold_color(value, defaults)
        if panel["options"].get("colorMode") == "background" and color not in (None, "none"):
            ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, color=color, alpha=0.85))
            text_color = "white"
        else:
            text_color = color if color not in (None, "none", COLORS["green"]) else TEXT
        ax.text(
            0.5,
            0.45,
            text,
            ha="center",
            va="center",
            fontsize=22,
            color=text_color,
            fontweight="bold",
            transform=ax.transAxes,
        )
        return True

    def table(self, figure: Figure, box: Box, panel: dict[str, Any]) -> bool:
        rows = self._table_rows(panel)
        if not rows:
            return False
        rename, order, excluded, sort = {}, {}, set(), []
        for transformation in panel.get("transformations", []):
            options = transformation.get("options", {})
            if transformation["id"] == "organize":
                rename = options.get("renameByName", {})
                order = options.get("indexByName", {})
                excluded = {k for k, v in options.get("excludeByName", {}).items() if v}
            if transformation["id"] == "sortBy":
                sort = options.get("sort", [])
        columns = [c for c in dict.fromkeys(k for row in rows for k in row) if c not in excluded]
        columns.sort(key=lambda c: order.get(c, len(order)))
        headers = [rename.get(c, c) for c in columns]
        for rule in reversed(sort):
            key = next((c for c in columns if rename.get(c, c) == rule["field"]), None)
            if key is not None:
                descending = bool(rule.get("desc"))
                rows.sort(key=partial(_number, column=key), reverse=descending)
        defaults = panel["fieldConfig"]["defaults"]
        overrides = {
            o["matcher"]["options"]: o["properties"]
            for o in panel["fieldConfig"].get("overrides", [])
        }
        cells = []
        for row in rows[:14]:
            line = []
            for column, header in zip(columns, headers, strict=True):
                value = row.get(column, "")
                if isinstance(value, float):
                    props = {p["id"]: p["value"] for p in overrides.get(header, [])}
                    mapped = mapped_text(value, {"mappings": props.get("mappings", [])})
                    value = mapped or formatter(
                        props.get("unit", defaults.get("unit", "short")), props.get("decimals")
                    )(value)
                line.append(str(value))
            cells.append(line)
        ax = figure.add_axes(box)
        ax.set_axis_off()
        table = ax.table(
            cellText=cells, colLabels=headers, loc="upper center", cellLoc="left", colLoc="left"
        )
        table.auto_set_font_size(False)
        table.set_fontsize(7.5)
        table.scale(1, 1.15)
        for (r, _), cell in table.get_celld().items():
            cell.set_edgecolor(BORDER)
            cell.set_facecolor(PANEL if r else BORDER)
            cell.get_text().set_color(TEXT if r else "white")
            if r and cell.get_text().get_text() in ("DRIFTED",):
                cell.set_facecolor(COLORS["red"])
        return True

    def _table_rows(self, panel: dict[str, Any]) -> list[dict[str, Any]]:
        many = len(panel["targets"]) > 1
        merged: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for target in panel["targets"]:
            column = f"Value #{target['refId']}" if many else "Value"
            for result in self.prometheus.instant(self.expr(target), self.end):
                labels = {k: v for k, v in result["metric"].items() if k != "__name__"}
                key = tuple(sorted(labels.items()))
                merged.setdefault(key, dict(labels))[column] = float(result["value"][1])
        return list(merged.values())

    def heatmap(self, figure: Figure, box: Box, panel: dict[str, Any]) -> bool:
        results = self.prometheus.range(
            self.expr(panel["targets"][0]), self.start, self.end, self.step
        )
        buckets = sorted(
            (
                (float(r["metric"]["le"]), dict((float(t), float(v)) for t, v in r["values"]))
                for r in results
                if r["metric"].get("le") not in (None, "+Inf")
            ),
            key=lambda item: item[0],
        )
        if not buckets:
            return False
        times = sorted({t for _, values in buckets for t in values})
        cumulative = [[values.get(t, 0.0) for t in times] for _, values in buckets]
        counts = [cumulative[0]] + [
            [max(b - a, 0.0) for a, b in zip(lower, upper, strict=True)]
            for lower, upper in itertools.pairwise(cumulative)
        ]
        edges = [0.0] + [bound for bound, _ in buckets]
        ax = self._axes(figure, box)
        ax.grid(False)
        x_edges = _dates([t - self.step / 2 for t in times] + [times[-1] + self.step / 2])
        mesh = ax.pcolormesh(x_edges, edges, counts, cmap="Oranges", shading="flat")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.1f}"))
        colorbar = figure.colorbar(mesh, ax=ax, pad=0.01, fraction=0.04)
        colorbar.ax.tick_params(colors=MUTED, labelsize=7)
        colorbar.set_label("rows per interval", color=MUTED, fontsize=7)
        ax.set_ylabel("probability of prioritaire", color=MUTED, fontsize=8)
        return True

    def text(self, figure: Figure, box: Box, panel: dict[str, Any]) -> bool:
        content = substitute(panel["options"]["content"], self.variables)
        content = re.sub(r"\*\*|`", "", content)
        content = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1 (\2)", content)
        lines = []
        for paragraph in content.split("\n"):
            lines.extend(textwrap.wrap(paragraph, 190) or [""])
        ax = figure.add_axes(box)
        ax.set_axis_off()
        ax.text(
            0.01,
            0.95,
            "\n".join(lines),
            color=TEXT,
            fontsize=8,
            va="top",
            transform=ax.transAxes,
            family="monospace",
        )
        return True


def _time_locator(seconds: float, max_ticks: int) -> mdates.DateLocator:
    """Ticks at round times, at most ``max_ticks`` of them."""
    for step in (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200):
        if seconds / step <= max_ticks:
            break
    if step < 60:
        return mdates.SecondLocator(bysecond=range(0, 60, step), tz=UTC)
    if step < 3600:
        return mdates.MinuteLocator(byminute=range(0, 60, step // 60), tz=UTC)
    return mdates.HourLocator(byhour=range(0, 24, step // 3600), tz=UTC)


def _number(row: dict[str, Any], column: str) -> float:
    return float(row.get(column) or 0)


def _override_colors(panel: dict[str, Any]) -> dict[str, str]:
    colors = {}
    for override in panel["fieldConfig"].get("overrides", []):
        for prop in override.get("properties", []):
            if prop["id"] == "color":
                fixed = prop["value"].get("fixedColor", "")
                colors[override["matcher"]["options"]] = COLORS.get(fixed, fixed)
    return colors


def _dates(timestamps: Iterable[float]) -> Any:
    """Matplotlib date numbers of unix timestamps."""
    return mdates.date2num([_dt(t) for t in timestamps])


def _dt(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def render(dashboard: dict[str, Any], renderer: Renderer, out: Path) -> None:
    renderer.use_dashboard(dashboard)
    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) + 2
    # A bare Figure: no pyplot, hence no GUI backend and no global figure state.
    figure = Figure(figsize=(WIDTH_INCHES, rows * UNIT_HEIGHT_INCHES), facecolor=BACKGROUND)
    span = f"{_dt(renderer.start):%Y-%m-%d %H:%M} to {_dt(renderer.end):%H:%M} UTC"
    figure.text(
        0.005,
        1 - 0.6 / rows,
        f"{dashboard['title']}    ({span}, test stack)",
        color=TEXT,
        fontsize=15,
        fontweight="bold",
        va="center",
    )
    shifted = 2
    for panel in panels:
        moved = {**panel, "gridPos": {**panel["gridPos"], "y": panel["gridPos"]["y"] + shifted}}
        renderer.draw(figure, moved, rows)
    figure.savefig(out, dpi=90, facecolor=BACKGROUND)


def render_all(
    prometheus_url: str, *, start: float, end: float, out: Path, dashboards: Path
) -> list[Path]:
    """One PNG per dashboard of ``dashboards`` into ``out``, over ``start`` to ``end``
    (unix times); returns the images written."""
    step = max(1.0, round((end - start) / 240))
    renderer = Renderer(Prometheus(prometheus_url), start, end, step)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(dashboards.glob("*.json")):
        image = out / f"{path.stem}.png"
        render(json.loads(path.read_text(encoding="utf-8")), renderer, image)
        written.append(image)
    return written
