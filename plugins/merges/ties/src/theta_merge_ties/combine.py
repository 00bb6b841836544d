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

    Elements whose merged change is zero keep the base's bits.
    """
    weighted = [w * d for w, d in zip(weights, deltas, strict=True)]
    if not elect_sign:
        mixed = weighted[0] + weighted[1]
    else:
        kind = base.dtype.type
        elected = np.where(weighted[0] + weighted[1] >= 0, kind(1), kind(-1))
        kept = [(np.sign(wd) == elected).astype(base.dtype) for wd in weighted]
        mixed = weighted[0] * kept[0] + weighted[1] * kept[1]
        divisor = weights[0] * kept[0] + weights[1] * kept[1]
        divisor[divisor == 0] = 1
        mixed = mixed / divisor
    if scale != 1.0:
        mixed = mixed * base.dtype.type(scale)
    return np.where(mixed == 0, base, base + mixed)
