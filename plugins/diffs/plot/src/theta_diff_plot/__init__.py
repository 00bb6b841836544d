"""The `plot` diff renderer: the relative change of each layer, in checkpoint order, as a bar chart.

One panel per file; one bar per parameter (height `relative` = ‖new - old‖₂ / ‖old‖₂). The
scale turns logarithmic when the changes span more than two orders of magnitude. Added,
removed and reshaped parameters, which have no relative change, are marked along the
bottom. Written as a PNG (matplotlib's Agg backend, so no display is needed), at least
1200x500 pixels; the plotted values are also kept in the PNG's `theta-diff` text chunk as
JSON (`[[path, [[name, relative], ...]], ...]`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from attrs import frozen

import theta
from theta.diffs import ADDED, CHANGED, REMOVED, DiffRenderer, FileDiff, RenderOutput

DPI = 100
MIN_WIDTH, MAX_WIDTH, PANEL_HEIGHT = 12.0, 48.0, 5.0
MAX_LABELS = 60
MARKS = {ADDED: ("added", "tab:green"), REMOVED: ("removed", "tab:red"), "reshaped": ("reshaped", "tab:purple")}


def plotted(diff: FileDiff) -> list[tuple[str, float | None, str | None]]:
    """(name, relative change or None, mark) per parameter in checkpoint order."""
    out = []
    for param in diff.parameters:
        mark = param.status if param.status in (ADDED, REMOVED) else "reshaped" if param.reshaped else None
        value = param.relative if param.status == CHANGED else 0.0 if mark is None else None
        out.append((param.name, value, mark))
    return out


def build_figure(diffs: Sequence[FileDiff]) -> Any:
    """A matplotlib figure of `diffs`, one panel each (the bars are the axes' first container)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    longest = max((len(d.parameters) for d in diffs), default=1)
    width = min(MAX_WIDTH, max(MIN_WIDTH, 0.18 * longest))
    figure = Figure(figsize=(width, PANEL_HEIGHT * max(1, len(diffs))), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    if not diffs:
        figure.text(0.5, 0.5, "no checkpoint changed", ha="center", va="center")
        return figure
    for index, diff in enumerate(diffs):
        _panel(figure.add_subplot(len(diffs), 1, index + 1), diff)
    return figure


def _panel(ax: Any, diff: FileDiff) -> None:
    data = plotted(diff)
    positions = list(range(len(data)))
    heights = [value or 0.0 for _, value, _ in data]
    ax.bar(positions, heights, color="tab:blue", width=0.8, label="relative change ‖new - old‖ / ‖old‖")
    positive = [h for h in heights if h > 0]
    if positive and max(positive) / min(positive) > 100:
        ax.set_yscale("log")
    for mark, (label, color) in MARKS.items():
        where = [i for i, (_, _, m) in enumerate(data) if m == mark]
        if where:
            ax.scatter(where, [0] * len(where), marker="^", color=color, label=label, zorder=3, clip_on=False)
    step = max(1, -(-len(data) // MAX_LABELS))
    ax.set_xticks(positions[::step], [_label(name) for name, _, _ in data][::step], rotation=90, fontsize=7)
    ax.set_xlim(-0.6, max(len(data) - 0.4, 0.6))
    s = diff.summary
    versions = f"{diff.old or 'working tree'} → {diff.new or 'working tree'}"
    ax.set_title(
        f"{_label(diff.path)} ({versions}): {s.changed} changed, {s.added} added, {s.removed} removed,"
        f" {s.unchanged} unchanged"
    )
    ax.set_ylabel("relative change")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)


def _label(name: str) -> str:
    return name.encode("unicode_escape").decode("ascii") if not name.isprintable() else name


def data_chunk(diffs: Sequence[FileDiff]) -> str:
    return json.dumps([[d.path, [[name, value] for name, value, _ in plotted(d)]] for d in diffs])


@frozen
class PlotRenderer(DiffRenderer):
    name = "plot"
    writes_file = True

    def render(self, diffs: Iterable[FileDiff], output: RenderOutput) -> None:
        if output.target is None:
            raise theta.ThetaError("the plot renderer writes a PNG file: name it (`git theta diff --plot FILE.png`)")
        collected = list(diffs)
        figure = build_figure(collected)
        figure.savefig(output.target, format="png", metadata={"theta-diff": data_chunk(collected)})


@theta.hookimpl
def theta_register_diff_renderers(register: Callable[[DiffRenderer], None]) -> None:
    register(PlotRenderer())
