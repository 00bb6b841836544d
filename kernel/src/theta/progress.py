"""Progress of long work, shown on stderr as git-lfs shows it.

One line per phase of work (adding, storing, downloading, writing a file): on a terminal,
once the work has lasted `delay` seconds, the line shows the share done, the bytes, the rate
and the time left, redrawn in place (by tqdm) and finished with `, done.`; when stderr is not
a terminal, no line is redrawn: work that lasted that long gets one summary line at its end.
`GIT_THETA_QUIET` (set by `git theta -q`) shows nothing; `GIT_PROGRESS_DELAY` (seconds, as
in git) overrides every delay.
"""

from __future__ import annotations

import io
import os
import sys
import time
from types import TracebackType
from typing import Any, BinaryIO

from theta.sizes import human

QUIET_ENV = "GIT_THETA_QUIET"
DELAY_ENV = "GIT_PROGRESS_DELAY"
REFRESH = 0.5  # seconds between redraws on a terminal
LINE = "theta: {label}: {share}{done_h}{total_h}, {rate_h}{eta_h}"


def quiet() -> bool:
    return os.environ.get(QUIET_ENV, "") not in ("", "0")


def shows_progress() -> bool:
    """Whether progress is drawn at all: stderr is a terminal and nothing asked for quiet."""
    return not quiet() and _stderr_is_terminal()


def delay_for(default: float) -> float:
    value = os.environ.get(DELAY_ENV)
    if value is None:
        return default
    try:
        return max(float(value), 0.0)
    except ValueError:
        return default


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _terminal_size() -> tuple[int, int]:
    """Columns and rows; lines longer than the terminal are cut (a wrapped line cannot be redrawn).

    A terminal that reports no size (0 x 0) is treated as a large one.
    """
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
        columns, rows = size.columns, size.lines
    except (AttributeError, OSError, ValueError):
        columns = rows = 0
    return (columns if columns > 0 else 1000, rows if rows > 0 else 100)


def _amount(n: float, unit: str) -> str:
    return human(n) if unit == "B" else f"{n:.0f}"


def _interval(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """One phase of work of `total` units (`unit` "B" for bytes; a total of 0 means unknown)."""

    def __init__(self, label: str, total: int, unit: str = "", delay: float = 2.0) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self._start = time.monotonic()
        self._delay = delay_for(delay)
        self._quiet = quiet()
        self._terminal = _stderr_is_terminal()
        self._bar: Any = None
        self._closed = False

    # -- counting ------------------------------------------------------------------------

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        if self._quiet or not self._terminal:
            return
        if self._bar is None:
            if time.monotonic() - self._start < self._delay:
                return
            self._bar = self._open_bar()
        self._bar.update(amount)

    def reader(self, stream: Any, digest: Any = None) -> CountingReader:
        """`stream` (something with `readinto`) counted into this progress as it is read (and fed to `digest`)."""
        return CountingReader(stream, self, digest)

    def writer(self, sink: BinaryIO) -> CountingWriter:
        """`sink` counted into this progress as it is written."""
        return CountingWriter(sink, self)

    # -- the line ------------------------------------------------------------------------

    def fields(self, final: bool = False) -> dict[str, str]:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.done / elapsed
        known = self.total > 0
        share = f"{min(100, 100 * self.done // self.total):3d}% (" if known else ""
        total = f"/{_amount(self.total, self.unit)})" if known else ""
        if final:
            eta = ", done."
        elif known and rate > 0:
            eta = f", ETA {_interval(max(self.total - self.done, 0) / rate)}"
        else:
            eta = ""
        return {
            "label": self.label,
            "share": share,
            "done_h": _amount(self.done, self.unit),
            "total_h": total,
            "rate_h": f"{_amount(rate, self.unit)}/s",
            "eta_h": eta,
        }

    def _open_bar(self) -> Any:
        from tqdm import tqdm

        tqdm.monitor_interval = 0  # no monitor thread in a filter process

        progress = self

        class Bar(tqdm):  # type: ignore[misc]
            @property
            def format_dict(self) -> dict[str, Any]:
                return {**super().format_dict, **progress.fields()}

        return Bar(
            total=self.total or None,
            initial=self.done,
            file=sys.stderr,
            bar_format=LINE,
            mininterval=REFRESH,
            ncols=_terminal_size()[0],
            nrows=_terminal_size()[1],
            leave=True,
        )

    def close(self) -> None:
        """Finish the line: `, done.` on a terminal; a summary when stderr is not a terminal."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.bar_format = LINE.replace("{eta_h}", ", done.")
            self._bar.close()  # draws the line a last time and ends it
            return
        if self._quiet or self._terminal or time.monotonic() - self._start < self._delay:
            return
        fields = self.fields(final=True)
        took = time.monotonic() - self._start
        sys.stderr.write(
            f"theta: {fields['label']}: {fields['share']}{fields['done_h']}{fields['total_h']}"
            f" in {took:.1f} s, {fields['rate_h']}, done.\n"
        )
        sys.stderr.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class CountingReader(io.RawIOBase):
    """A readable stream that counts what is read from it into a `Progress`."""

    def __init__(self, stream: Any, progress: Progress, digest: Any = None) -> None:
        super().__init__()
        self._stream = stream
        self._progress = progress
        self._digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        got = self._stream.readinto(buffer) or 0
        if got:
            self._progress.advance(got)
            if self._digest is not None:
                self._digest.update(memoryview(buffer)[:got])
        return got


class CountingWriter:
    """A sink that counts what is written to it into a `Progress`."""

    def __init__(self, sink: BinaryIO, progress: Progress) -> None:
        self._sink = sink
        self._progress = progress

    def write(self, data: Any) -> int:
        written = self._sink.write(data)
        self._progress.advance(memoryview(data).nbytes)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)
