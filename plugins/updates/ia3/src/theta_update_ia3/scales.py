"""Estimating an IA3 scale vector: the median ratio new/base, then snapped to the exact value."""

from __future__ import annotations

import numpy as np

from theta import bits as _bits

AXES = ("rows", "columns")
SAMPLE_SLICES = 256
# Share of a change's energy that one scale per row (column) leaves unexplained, above which the
# change is not an IA3 one along that axis (a full fine-tune leaves nearly all of it).
MAX_UNEXPLAINED = 0.5


def part(vector: np.ndarray, rows: slice | np.ndarray, axis: str) -> np.ndarray:
    """The scales that apply to some rows: theirs for a per-row scale, all of them per column."""
    return vector[rows] if axis == "rows" else vector


def scaled(base: np.ndarray, vector: np.ndarray, axis: str) -> np.ndarray:
    """base times one scale per row (`rows`) or per column (`columns`), elementwise."""
    column = vector.astype(base.dtype, copy=False)
    return base * (column[:, None] if axis == "rows" else column[None, :])


def scaling_axes(base_bits: np.ndarray, target_bits: np.ndarray, name: str) -> list[str]:
    """The axes along which one least-squares scale per row (column) explains all but
    MAX_UNEXPLAINED of the change's energy, on SAMPLE_SLICES evenly spaced rows by as many
    columns: a cheap test before the exact fit."""
    grid = np.ix_(*(_bits.evenly_spaced(n, SAMPLE_SLICES) for n in base_bits.shape))
    base, target = (_bits.to_values(b[grid], name).astype(np.float64) for b in (base_bits, target_bits))
    usable = np.isfinite(base) & np.isfinite(target)
    base, target = np.where(usable, base, 0.0), np.where(usable, target, 0.0)
    change = float(np.square(target - base).sum())
    if change == 0:
        return list(AXES)
    found = []
    for axis, reduce_over in zip(AXES, (1, 0), strict=True):
        energy = np.square(base).sum(axis=reduce_over, keepdims=True)
        fitted = np.divide(
            (base * target).sum(axis=reduce_over, keepdims=True), energy, where=energy > 0, out=np.ones_like(energy)
        )
        if float(np.square(target - fitted * base).sum()) <= MAX_UNEXPLAINED * change:
            found.append(axis)
    return found


def slice_medians(values: np.ndarray) -> np.ndarray:
    """The median of each row of a float matrix, NaN left out (NaN for a row of NaN only): the
    numbers `np.nanmedian(values, axis=1)` gives, except near the largest float, where NumPy's
    mean of the two middle values overflows to infinity and this keeps the value.

    One sort of the rows: NumPy sorts many short rows with vector instructions, about ten times
    as fast as it partitions them one by one (which `np.median` along an axis does).
    """
    if values.shape[1] == 0:
        return np.full(values.shape[0], np.nan, dtype=values.dtype)
    ordered = np.array(values, order="C")
    ordered.sort(axis=1)  # NaN last
    counts = ordered.shape[1] - np.count_nonzero(np.isnan(ordered), axis=1)
    rows = np.arange(ordered.shape[0])
    low, high = ordered[rows, np.maximum(counts - 1, 0) // 2], ordered[rows, counts // 2]
    with np.errstate(over="ignore", invalid="ignore"):
        middle = np.where(counts % 2 == 1, low, (low + high) / low.dtype.type(2))
    return np.where(counts == 0, low.dtype.type(np.nan), middle)


def estimated_scale(base_bits: np.ndarray, target_bits: np.ndarray, name: str, axis: str) -> np.ndarray:
    """One float32 scale per row or column, as near as possible to what produced the new bits.

    The median of new/base over each row (or column) comes within a rounding error of the
    scale used; among it, its float32 neighbours and its value rounded to the tensor's dtype,
    each row (column) keeps the one that reproduces the most elements exactly. Both are judged
    on about SAMPLE_SLICES evenly spaced columns (rows).
    """
    reduce_over = 1 if axis == "rows" else 0
    pick = _bits.evenly_spaced(base_bits.shape[reduce_over], SAMPLE_SLICES)
    base_bits, target_bits = (
        (base_bits[:, pick], target_bits[:, pick]) if axis == "rows" else (base_bits[pick], target_bits[pick])
    )
    base, target = _bits.to_values(base_bits, name), _bits.to_values(target_bits, name)
    ratio = target / base
    valid = np.isfinite(ratio) & (base != 0)
    by_slice, valid = (ratio, valid) if axis == "rows" else (ratio.T, valid.T)
    median = slice_medians(by_slice if valid.all() else np.where(valid, by_slice, np.float32(np.nan)))
    median = np.where(np.isfinite(median), median, 1.0).astype(np.float32)
    candidates = [
        median,
        np.nextafter(median, np.float32(np.inf)),
        np.nextafter(median, np.float32(-np.inf)),
        _bits.to_values(_bits.to_bits(median, name), name).astype(np.float32),
    ]
    misses = np.stack(
        [(_bits.to_bits(scaled(base, c, axis), name) != target_bits).sum(axis=reduce_over) for c in candidates]
    )
    choice = misses.argmin(axis=0)
    return np.ascontiguousarray(np.stack(candidates)[choice, np.arange(median.size)])
