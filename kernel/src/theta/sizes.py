"""Sizes for people: the one place that turns a byte count into text."""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human(n: float) -> str:
    """`512 B`, `1.5 KiB`, `3.2 GiB`: binary units, one decimal above bytes."""
    size = float(n)
    for unit in UNITS:
        if abs(size) < 1024 or unit == UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
