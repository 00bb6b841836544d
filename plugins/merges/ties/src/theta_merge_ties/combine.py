"""Combining the two (trimmed or dropped) changes of one span: summed, or by elected sign (TIES)."""

from __future__ import annotations

import numpy as np


def combine(
    base: np.ndarray,
    deltas: tuple[np.ndarray, np.ndarray],
    weights: tuple[np.floating, np.floating],
    scale: float,
    elect_sign: bool,
) -> np.ndarray:
    """`base + scale * merged`, where merged is the weighted sum of `deltas` or, with `elect_sign`,
    the sum of the weighted deltas whose sign is the elected one (that of the weighted sum,
    positive at 0) divided by the sum of their weights (1 where none is kept).

    `deltas` are the caller's own arrays and are overwritten. Elements whose merged change is
    zero keep the base's bits.
    """
    weighted = list(deltas)
    for delta, weight in zip(weighted, weights, strict=True):
        if weight != 1:
            delta *= weight
    ours, theirs = weighted
    if not elect_sign:
        mixed = ours + theirs
    else:
        positive = (ours + theirs) >= 0  # NaN elects the negative sign, as in mergekit
        kept = [np.where(positive, d > 0, d < 0) for d in weighted]  # a zero delta is never kept
        for delta, keep in zip(weighted, kept, strict=True):
            delta[~keep] = 0
        mixed = ours + theirs
        divisor = kept[0] * weights[0] + kept[1] * weights[1]
        divisor[divisor == 0] = 1
        mixed /= divisor
    if scale != 1.0:
        mixed *= base.dtype.type(scale)
    merged = base + mixed
    np.copyto(merged, base, where=mixed == 0)
    return merged
