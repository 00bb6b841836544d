"""A progress line on stderr for long work, rewritten in place at most twice a second."""

from __future__ import annotations

import sys
import time

from theta.sizes import human


class Progress:
    def __init__(self, label: str, total: int, unit: str = "", delay: float = 1.0) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self._start = time.monotonic()
        self._delay = delay
        self._last = 0.0
        self._shown = False

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        now = time.monotonic()
        if now - self._start >= self._delay and now - self._last >= 0.5:
            self._last = now
            self._show()

    def _show(self, end: str = "\r") -> None:
        pct = 100 * self.done // self.total if self.total else 100
        sys.stderr.write(
            f"theta: {self.label}: {pct}% ({_human(self.done, self.unit)}/{_human(self.total, self.unit)}){end}"
        )
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self._show(end="\n")


def _human(n: int, unit: str) -> str:
    return human(n) if unit == "B" else str(n)
