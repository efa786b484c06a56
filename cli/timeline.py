"""``--timeline FILE``: a mission's timeline (``workflow.timeline``) drawn with matplotlib.

Headless: a bare ``Figure`` (no pyplot, no GUI backend, no global state), saved in the format
the file's suffix names. matplotlib is the optional extra ``plot`` (in ``local`` and ``dev``):
without it, a named error says which extra to install.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final

from rich.console import Console

from workflow.errors import LightHpcError
from workflow.ports import MissionStore
from workflow.records import MissionRecord
from workflow.states import ShardStatus
from workflow.timeline import MarkKind, Timeline, build_timeline

FORMATS: Final = {".png": "png", ".svg": "svg"}
TIMELINE_FILE: Final = "timeline.png"  # what ``lighthpc local run`` writes beside result.csv
PLOT_EXTRA: Final = "plot"

_BAR_COLOURS: Final = {
    ShardStatus.DONE: "#4c9f70",
    ShardStatus.FAILED: "#d64545",
    ShardStatus.INTERRUPTED: "#f0a030",
    ShardStatus.LOST: "#9a9a9a",
    ShardStatus.RUNNING: "#7fa7d9",
}
# (matplotlib marker, colour) per mark; a relaunch and its On-Demand fallback share a time,
# so their shapes differ in size as well as form.
_MARK_STYLES: Final = {
    MarkKind.INTERRUPTION: ("X", "#e07b00", 90),
    MarkKind.RELAUNCH: (">", "#3465a4", 60),
    MarkKind.ON_DEMAND: ("s", "#75507b", 110),
    MarkKind.FAILED_SHARD: ("x", "#a40000", 70),
}
_ROW_INCHES, _MAX_INCHES = 0.32, 60.0


class TimelineFormat(LightHpcError):
    """The picture's file name has a suffix matplotlib is not asked to write here."""

    error_name = "Timeline.UnsupportedFormat"


class TimelineUnwritable(LightHpcError):
    """The picture's file cannot be written there (a file in the path, no permission)."""

    error_name = "Timeline.Unwritable"


class PlotUnavailable(LightHpcError):
    """matplotlib is not installed (the ``plot`` extra)."""

    error_name = "Timeline.PlotUnavailable"


def image_format(path: Path) -> str:
    """``png`` or ``svg`` from the suffix; ``Timeline.UnsupportedFormat`` otherwise."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise TimelineFormat(
            f"cannot draw {path.name!r}: the timeline is a .png or an .svg file"
        ) from None


def require_matplotlib() -> None:
    """``Timeline.PlotUnavailable`` naming the extra, before any work is done."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise PlotUnavailable(
            f"drawing a timeline needs matplotlib: pip install 'lighthpc-sfn[{PLOT_EXTRA}]'"
        ) from exc


def mission_timeline(store: MissionStore, mission: MissionRecord) -> Timeline:
    """The timeline from the mission's records, as they are now."""
    mission_id = mission.mission_id
    return build_timeline(
        mission, store.list_units(mission_id), store.list_shards(mission_id), now=time.time()
    )


def write_beside_result(
    store: MissionStore, mission: MissionRecord, directory: Path, err: Console
) -> dict[str, Any] | None:
    """``local run``: ``timeline.png`` in the result directory, and what it shows (rows and
    marks, bars counted) for summary.json. Without matplotlib the run goes on, and says so."""
    model = mission_timeline(store, mission)
    try:
        path = draw(model, directory / TIMELINE_FILE)
    except (PlotUnavailable, TimelineUnwritable) as exc:
        err.print(f"note: no {TIMELINE_FILE}: {exc}", markup=False, highlight=False)
        return None
    return {"file": str(path), **model.as_json(bars=False)}


def draw(timeline: Timeline, path: Path) -> Path:
    """Write the picture to ``path`` (format by suffix); returns the path."""
    fmt = image_format(path)
    require_matplotlib()
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    rows = timeline.rows
    height = min(_MAX_INCHES, 1.8 + _ROW_INCHES * max(len(rows), 1))
    fig = Figure(figsize=(11, height), layout="constrained")
    ax = fig.add_subplot()
    for y, row in enumerate(rows):
        ax.broken_barh(
            [(b.start, max(b.end - b.start, 1e-3)) for b in row.bars],
            (y - 0.35, 0.7),
            facecolors=[_BAR_COLOURS.get(b.status, "#bbbbbb") for b in row.bars],
            edgecolor="white",
            linewidth=0.4,
        )
    _draw_marks(ax, timeline)
    ax.set_yticks(range(len(rows)), [_plain(row.label()) for row in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # unit 1 attempt 1 on top
    ax.set_xlim(0, max(timeline.span, 1.0) * 1.02)
    ax.set_xlabel("seconds since the mission started")
    ax.grid(axis="x", alpha=0.3)
    title = f"{timeline.mission_id} · {timeline.status.value} · {timeline.cost_line()}"
    ax.set_title(_plain(title), fontsize=10)
    _legend(ax)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with rc_context({"svg.fonttype": "none"}):  # SVG text stays text: searchable, smaller
            fig.savefig(path, format=fmt, dpi=110)
    except OSError as exc:
        raise TimelineUnwritable(f"cannot write {str(path)!r}: {exc.strerror or exc}") from exc
    return path


def _plain(text: str) -> str:
    """Text as written: matplotlib reads a pair of ``$`` (two prices) as a math formula."""
    return text.replace("$", r"\$")


def _draw_marks(ax: Any, timeline: Timeline) -> None:
    index = {(row.unit_id, row.attempt): y for y, row in enumerate(timeline.rows)}
    for kind, (marker, colour, size) in _MARK_STYLES.items():
        found = timeline.marks(kind)
        if found:
            ax.scatter(
                [mark.at for _, mark in found],
                [index[(row.unit_id, row.attempt)] for row, _ in found],
                marker=marker,
                c=colour,
                s=size,
                zorder=3,
                label=kind.value,
            )


def _legend(ax: Any) -> None:
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    shown = (ShardStatus.DONE, ShardStatus.FAILED, ShardStatus.INTERRUPTED, ShardStatus.RUNNING)
    handles += [Patch(color=_BAR_COLOURS[s]) for s in shown]
    labels += [f"shard {s.value.lower()}" for s in shown]
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
