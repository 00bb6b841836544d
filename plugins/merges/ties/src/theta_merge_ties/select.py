"""The k largest magnitudes of a change, found span by span without sorting (or holding) it.

A float's magnitude orders exactly like its bits with the sign bit cleared (NaN above
infinity), so the k-th largest magnitude is found as an unsigned key, 16 bits at a time: a
histogram of the top 16 bits over the whole change finds the bin holding it, the next 16 bits
within that bin narrow it down, and so on (two passes for float32 work, four for float64).
Elements equal to that threshold are taken lowest index first, so exactly k are kept.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from theta.merges import spans

DIGIT = 16
BINS = 1 << DIGIT
_KEYS = {
    np.dtype(np.float32): (np.uint32, 0x7FFF_FFFF),
    np.dtype(np.float64): (np.uint64, 0x7FFF_FFFF_FFFF_FFFF),
}


def magnitude_keys(values: np.ndarray) -> np.ndarray:
    """Unsigned integers that order like `abs(values)` (NaN largest)."""
    kind, mask = _KEYS[values.dtype]
    return values.view(kind) & kind(mask)


def kth_largest(keys_of: Callable[[slice], np.ndarray], numel: int, k: int) -> tuple[int, int]:
    """The key of the k-th largest magnitude (1 <= k <= numel), and how many elements equal to it to keep.

    `keys_of(span)` gives the keys of elements `span`; it is called once per span and pass.
    """
    width = keys_of(slice(0, 1)).dtype.itemsize * 8
    prefix = 0
    remaining = k
    for level in range(width // DIGIT):
        shift = width - DIGIT * (level + 1)
        histogram = np.zeros(BINS, dtype=np.int64)
        for span in spans(numel):
            keys = keys_of(span)
            if level:
                keys = keys[(keys >> (shift + DIGIT)) == prefix]
            histogram += np.bincount(((keys >> shift) & (BINS - 1)).astype(np.intp), minlength=BINS)
        at_least = np.cumsum(histogram[::-1])  # at_least[j]: how many digits are >= BINS - 1 - j
        j = int(np.searchsorted(at_least, remaining))
        digit = BINS - 1 - j
        remaining -= int(at_least[j] - histogram[digit])
        prefix = (prefix << DIGIT) | digit
    return prefix, remaining


class TopK:
    """Marks the elements of the k largest magnitudes, span after span in index order."""

    def __init__(self, threshold: int, equal: int) -> None:
        self.threshold = threshold
        self.equal_left = equal

    def mask(self, keys: np.ndarray) -> np.ndarray:
        keep = keys > self.threshold
        if self.equal_left:
            equal = np.flatnonzero(keys == self.threshold)[: self.equal_left]
            keep[equal] = True
            self.equal_left -= len(equal)
        return keep


def top_k(keys_of: Callable[[slice], np.ndarray], numel: int, density: float) -> TopK | None:
    """A `TopK` keeping `max(1, floor(density * numel))` elements; None when nothing is trimmed."""
    if density >= 1 or numel == 0:
        return None
    k = max(1, int(density * numel))
    threshold, equal = kth_largest(keys_of, numel, k)
    return TopK(threshold, equal)
