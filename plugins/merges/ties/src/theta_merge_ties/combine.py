"""Combining the two (trimmed or dropped) changes of one span: summed, or by elected sign (TIES).

The arithmetic is mergekit's: a change not kept is multiplied by 0 (so a NaN stays NaN), the
divisor is the sum of the kept weights. It runs on the caller's arrays, one NumPy operation per
step, on spans small enough for their temporaries to stay in the cache. Choosing between two
arrays element by element is done on their bits (`select`): NumPy's masked `where` and `copyto`
branch on every element, which costs twenty times an addition on a random mask.
"""

from __future__ import annotations

import numpy as np

_UINT = {4: np.uint32, 8: np.uint64}


def select(mask: np.ndarray, if_true: np.ndarray, if_false: np.ndarray) -> np.ndarray:
    """`np.where(mask, if_true, if_false)` for float arrays of one dtype, bit for bit, without branches."""
    kind = _UINT[if_true.dtype.itemsize]
    ones = np.negative(mask.view(np.uint8), dtype=kind)  # all bits set where the mask is true
    t, f = if_true.view(kind), if_false.view(kind)
    chosen = np.bitwise_xor(t, f)
    chosen &= ones
    chosen ^= f
    return chosen.view(if_true.dtype)


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
    if elect_sign and weights[0] == weights[1] == 1:
        mixed = _elected_mean(*deltas)
    else:
        mixed = _weighted(deltas, weights, elect_sign)
    if scale != 1.0:
        mixed *= base.dtype.type(scale)
    return select(mixed == 0, base, base + mixed)


def _elected_mean(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """The elected-sign mean of two changes of weight 1: the numbers `_weighted` gives, in fewer steps.

    Where the two agree in sign both are kept: their sum halved. Elsewhere at most one has the
    sign of their sum (positive at 0) and it is kept alone: the larger of the two where the sum
    is positive or zero, the smaller where it is negative. A NaN sum is NaN.
    """
    total = ours + theirs
    agree = np.multiply(ours, theirs) > 0
    alone = select(total >= 0, np.maximum(ours, theirs), np.minimum(ours, theirs))
    total *= total.dtype.type(0.5)
    mixed = select(agree, total, alone)
    if not np.isfinite(total).all():
        np.copyto(mixed, total, where=np.isnan(total))  # opposite infinities, or a NaN change
    return mixed


def _weighted(
    deltas: tuple[np.ndarray, np.ndarray], weights: tuple[np.floating, np.floating], elect_sign: bool
) -> np.ndarray:
    ours, theirs = deltas
    for delta, weight in zip(deltas, weights, strict=True):
        if weight != 1:
            delta *= weight
    kind = ours.dtype.type
    mixed = ours + theirs
    if not elect_sign:
        return mixed
    sign = np.multiply(mixed >= 0, kind(2), dtype=kind)  # NaN elects the negative sign, as in mergekit
    sign -= kind(1)
    kept = []
    for delta in deltas:
        np.multiply(delta, sign, out=mixed)
        keep = mixed > 0  # a zero (or NaN) change is never kept
        delta *= keep
        kept.append(keep)
    np.add(ours, theirs, out=mixed)
    divisor = kept[0] * weights[0]
    divisor += kept[1] * weights[1]
    divisor += divisor == 0  # 1 where nothing is kept
    mixed /= divisor
    return mixed
