"""The k largest magnitudes of a change, without sorting it.

A float's magnitude orders exactly like its bits with the sign bit cleared (NaN above
infinity), so the magnitudes become unsigned keys, gathered span by span into one array (the
only full-size temporary), and an in-place selection (`ndarray.partition`) finds the k-th
largest. Elements equal to that threshold are then taken lowest index first, so exactly k
are kept. An element not kept is multiplied by 0, as mergekit does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from theta.merges import spans

_KEYS = {
    np.dtype(np.float32): (np.uint32, 0x7FFF_FFFF),
    np.dtype(np.float64): (np.uint64, 0x7FFF_FFFF_FFFF_FFFF),
}


def magnitude_keys(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Unsigned integers that order like `abs(values)` (NaN largest); `out` may be `values` viewed as them."""
    kind, mask = _KEYS[values.dtype]
    return np.bitwise_and(values.view(kind), kind(mask), out=out)


def key_dtype(value_dtype: type[np.floating]) -> type[np.unsignedinteger]:
    return _KEYS[np.dtype(value_dtype)][0]


def kth_largest(fill_keys: Callable[[slice, np.ndarray], None], keys: np.ndarray, k: int) -> tuple[int, int, int]:
    """The key of the k-th largest magnitude (1 <= k <= keys.size), how many elements equal to it
    to keep, and how many there are.

    `fill_keys(span, out)` writes the keys of elements `span` into `out`; it is called once per
    span, into `keys`, whose contents are then reordered (a scratch array, one key per element).
    """
    numel = keys.size
    for span in spans(numel):
        fill_keys(span, keys[span])
    at = numel - k
    keys.partition(at)
    threshold = keys[at]
    greater = int(np.count_nonzero(keys[at + 1 :] > threshold))
    equal = int(np.count_nonzero(keys[:at] == threshold)) + k - greater
    return int(threshold), k - greater, equal


class TopK:
    """Keeps the elements of the k largest magnitudes, span after span in index order."""

    def __init__(self, threshold: int, keep_equal: int, equal: int) -> None:
        self.threshold = threshold
        self.equal_left = keep_equal
        self.every_equal = keep_equal == equal  # then no span needs counting them

    def mask(self, keys: np.ndarray) -> np.ndarray:
        if self.every_equal:
            return keys >= keys.dtype.type(self.threshold)
        keep = keys > self.threshold
        if self.equal_left:
            equal = np.flatnonzero(keys == self.threshold)[: self.equal_left]
            keep[equal] = True
            self.equal_left -= len(equal)
        return keep

    def trim(self, delta: np.ndarray) -> None:
        """Multiply the elements of this span of the change that are not kept by 0, in place."""
        delta *= self.mask(magnitude_keys(delta))


def top_k(fill_keys: Callable[[slice, np.ndarray], None], keys: np.ndarray, density: float) -> TopK | None:
    """A `TopK` keeping `max(1, floor(density * keys.size))` elements; None when nothing is trimmed.

    `keys` is scratch space for `kth_largest`.
    """
    if density >= 1 or keys.size == 0:
        return None
    k = max(1, int(density * keys.size))
    return TopK(*kth_largest(fill_keys, keys, k))
