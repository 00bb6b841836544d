"""The `text` diff renderer: what `git diff` and `git theta diff` print for a checkpoint.

Per file: a header, then a line per removed (`-`) and added (`+`) parameter, and two per
changed one (`-` its old layout, `+` its new layout with the update type, the bytes its step
stored and the figures), then one summary line. Unchanged parameters are counted, not listed.
Columns are aligned within a file; names are escaped, so no name can forge a line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from attrs import frozen

import theta
from theta.diffs import ADDED, CHANGED, REMOVED, DiffRenderer, FileDiff, ParameterDiff, RenderOutput, quote_name
from theta.sizes import human

BOLD, RED, GREEN, CYAN, RESET = "\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[36m", "\x1b[m"
NONE = "-"


def shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def figure_cells(param: ParameterDiff) -> list[str]:
    """The figures of a changed tensor, fixed-width so that they line up from row to row."""
    if param.status != CHANGED or (param.changed_fraction is None and param.l2 is None):
        return []

    def sci(value: float | None) -> str:
        return f"{value:.3e}" if value is not None else f"{NONE:>9}"

    changed = f"{param.changed_fraction:.2%}" if param.changed_fraction is not None else NONE
    cosine = f"{param.cosine:.6f}" if param.cosine is not None else NONE
    return [
        f"l2 {sci(param.l2)}",
        f"relative {sci(param.relative)}",
        f"max_abs {sci(param.max_abs)}",
        f"changed {changed:>7}",
        f"cosine {cosine:>9}",
    ]


def rows(diff: FileDiff) -> list[tuple[str, list[str]]]:
    """(sign, cells) for each line of a file's diff, unchanged parameters left out."""
    out: list[tuple[str, list[str]]] = []
    for param in diff.parameters:
        name = quote_name(param.name)
        stored = [param.update or NONE, human(param.stored_bytes) if param.stored_bytes is not None else NONE]
        if param.status == REMOVED:
            out.append(("-", [name, param.dtype, shape_text(param.shape)]))
        elif param.status == ADDED:
            out.append(("+", [name, param.dtype, shape_text(param.shape), *stored]))
        elif param.status == CHANGED:
            old_dtype = param.old_dtype or param.dtype
            old_shape = param.old_shape if param.old_shape is not None else param.shape
            out.append(("-", [name, old_dtype, shape_text(old_shape)]))
            out.append(("+", [name, param.dtype, shape_text(param.shape), *stored, *figure_cells(param)]))
    return out


def summary_text(diff: FileDiff) -> str:
    s = diff.summary
    changed = f"{s.changed} changed" + (f" ({s.reshaped} reshaped)" if s.reshaped else "")
    stored = "not stored yet" if s.stored_bytes is None else f"{human(s.stored_bytes)} of new objects"
    return f"{changed}, {s.added} added, {s.removed} removed, {s.unchanged} unchanged; {stored}"


def header_text(diff: FileDiff) -> str:
    old_path = diff.old_path or diff.path
    return f"diff --theta {quote_name('a/' + old_path)} {quote_name('b/' + diff.path)}"


def align(lines: list[tuple[str, list[str]]]) -> list[str]:
    widths: dict[int, int] = {}
    for _, cells in lines:
        for i, cell in enumerate(cells):
            widths[i] = max(widths.get(i, 0), len(cell))
    return [
        (sign + " " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells))).rstrip()
        for sign, cells in lines
    ]


def render_file(diff: FileDiff, color: bool) -> str:
    """The text of one file's diff; empty when none of its (selected) parameters changed."""
    if not diff.summary.any_change:
        return ""
    paint: Callable[[str, str], str] = (lambda code, text: f"{code}{text}{RESET}") if color else (lambda _, text: text)
    body = rows(diff)
    lines = [paint(BOLD, header_text(diff))]
    for (sign, _), line in zip(body, align(body), strict=True):
        lines.append(paint(RED if sign == "-" else GREEN, line))
    lines.append(paint(CYAN, "  " + summary_text(diff)))
    return "\n".join(lines) + "\n"


@frozen
class TextRenderer(DiffRenderer):
    name = "text"

    def render(self, diffs: Iterable[FileDiff], output: RenderOutput) -> None:
        for diff in diffs:
            text = render_file(diff, output.color)
            if text:
                output.stream.write(text)
                output.stream.flush()


@theta.hookimpl
def theta_register_diff_renderers(register: Callable[[DiffRenderer], None]) -> None:
    register(TextRenderer())
