"""What a diff-renderer plugin implements, and the records a diff produces.

The kernel compares two versions of a checkpoint (from metadata and objects, never from
rebuilt files) and hands renderers one `FileDiff` per file: per parameter its status, its
layout, and for a changed tensor of the same shape figures computed in float64. A renderer
writes them somewhere: text or JSON on a stream, a picture into a file.

Definitions (the same in `git theta diff --json` and `theta.diff`):
- `l2` = ‖new - old‖₂, `relative` = l2 / ‖old‖₂, `max_abs` = max |new - old|;
- `changed_fraction`: the share of elements whose bits differ (whose values differ when
  the dtype changed);
- `cosine`: the cosine similarity of old and new, flattened;
- `update`: the update type of the newer version's last step; `stored_bytes`: the bytes that
  step's objects hold (0 for an unchanged parameter, None where nothing is stored yet);
- `DiffSummary.stored_bytes`: the bytes of the objects the new version needs and the old one
  does not (what going from old to new costs the store).
A figure that does not apply (a removed parameter, a reshaped one, a norm of zero) is None.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar, TextIO

from attrs import field, frozen

ADDED, REMOVED, CHANGED, UNCHANGED = "added", "removed", "changed", "unchanged"
STATUSES = (ADDED, REMOVED, CHANGED, UNCHANGED)


def _status(_: object, attribute: object, value: str) -> None:
    if value not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {value!r}")


def _shape(value: object) -> tuple[int, ...]:
    return tuple(int(d) for d in value)  # type: ignore[attr-defined]


def _optional_shape(value: object) -> tuple[int, ...] | None:
    return None if value is None else _shape(value)


@frozen(kw_only=True)
class ParameterDiff:
    """One parameter of a diff.

    `dtype` and `shape` are the newer version's (the older one's for a removed parameter);
    `old_dtype` and `old_shape` are set only when the layout changed.
    """

    name: str
    status: str = field(validator=_status)
    dtype: str
    shape: tuple[int, ...] = field(converter=_shape)
    old_dtype: str | None = None
    old_shape: tuple[int, ...] | None = field(default=None, converter=_optional_shape)
    l2: float | None = None
    relative: float | None = None
    max_abs: float | None = None
    changed_fraction: float | None = None
    cosine: float | None = None
    update: str | None = None
    stored_bytes: int | None = None

    @property
    def reshaped(self) -> bool:
        return self.old_shape is not None and self.old_shape != self.shape


@frozen(kw_only=True)
class DiffSummary:
    """Counts per status; `stored_bytes` is None when the new side is not stored yet (a working tree)."""

    changed: int = 0
    added: int = 0
    removed: int = 0
    unchanged: int = 0
    reshaped: int = 0
    stored_bytes: int | None = 0

    @classmethod
    def of(cls, parameters: Iterable[ParameterDiff], stored_bytes: int | None) -> DiffSummary:
        counts = dict.fromkeys(STATUSES, 0)
        reshaped = 0
        for param in parameters:
            counts[param.status] += 1
            reshaped += param.reshaped
        return cls(**counts, reshaped=reshaped, stored_bytes=stored_bytes)

    @property
    def any_change(self) -> bool:
        return bool(self.changed or self.added or self.removed)


@frozen(kw_only=True)
class FileDiff:
    """How one checkpoint changed between two versions.

    `old` and `new` name the versions: a revision as the user gave it (or a blob id when git
    runs the diff driver), `"index"` for the index, None for the working tree. `parameters`
    are in checkpoint order (a removed one where it used to be).
    """

    path: str
    old: str | None
    new: str | None
    parameters: tuple[ParameterDiff, ...] = field(converter=tuple)
    summary: DiffSummary
    old_path: str | None = None


@frozen(kw_only=True)
class RenderOutput:
    """Where a renderer writes: `stream` for text, `target` for a renderer that writes a file.

    `color` is True when the stream is a terminal (or git's pager) that wants colour.
    """

    stream: TextIO
    color: bool = False
    target: Path | None = None


class DiffRenderer(abc.ABC):
    """A way to show diffs. Implement as a frozen attrs class and register an instance.

    `name` is what `git theta diff --format NAME` picks. A renderer with `writes_file = True`
    writes `output.target` (the command refuses to run it without one).
    """

    name: ClassVar[str]
    writes_file: ClassVar[bool] = False

    @abc.abstractmethod
    def render(self, diffs: Iterable[FileDiff], output: RenderOutput) -> None:
        """Show `diffs` (consumed once, one file at a time as they are computed)."""


def quote_name(name: str) -> str:
    """A name as a line of text can hold it: C-style escapes in double quotes when it has
    characters that are not printable (a newline, a terminal escape), a quote or a backslash.

    A plain name is returned as it is, so a parameter name can never forge a line of output.
    """
    if name and name.isprintable() and '"' not in name and "\\" not in name and name.strip() == name:
        return name
    out = []
    for ch in name:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'
