"""The k largest magnitudes of a change, without sorting it.

A float's magnitude orders exactly like its bits with the sign bit cleared (NaN above
infinity), so the magnitudes become unsigned keys, gathered span by span into one array (the
only full-size temporary). The k-th largest is then selected among the few keys near it: a
sorted sample of SAMPLE_KEYS keys gives two bounds that hold it with near certainty, counting
the keys below the lower bound tells its rank among those between them, and only those are
gathered (span by span, at most a 1/MOST_GATHERED share of all) and partitioned. Should the
bounds miss it, or hold too many keys (long runs of equal ones, such as unchanged elements),
the whole array is partitioned in place instead; either way the result is exact. Elements
equal to that threshold are then taken lowest index first, so exactly k are kept. An element
not kept is multiplied by 0, as mergekit does.
"""

from __future__ import annotations

import functools
import math
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


SAMPLE_KEYS = 1 << 16
_MARGIN_SIGMAS = 4  # the bounds sit this many standard deviations of the sample's rank either side
MOST_GATHERED = 16  # at most numel // MOST_GATHERED keys are gathered between the bounds


def kth_largest(fill_keys: Callable[[slice, np.ndarray], None], keys: np.ndarray, k: int) -> tuple[int, int, int]:
    """The key of the k-th largest magnitude (1 <= k <= keys.size), how many elements equal to it
    to keep, and how many there are.

    `fill_keys(span, out)` writes the keys of elements `span` into `out`; it is called once per
    span, into `keys`, whose contents are then reordered (a scratch array, one key per element).
    """
    numel = keys.size
    for span in spans(numel):
        fill_keys(span, keys[span])
    threshold, greater, equal = rank_counts(keys, numel - k)
    return threshold, k - greater, equal


def rank_counts(keys: np.ndarray, at: int) -> tuple[int, int, int]:
    """The key at index `at` of `keys` sorted, how many keys are greater and how many equal to it.

    `keys` may be reordered.
    """
    found = _near(keys, at)
    candidates, below = found if found is not None else (keys, 0)
    above = keys.size - below - candidates.size  # every key above the candidates is greater
    at -= below
    candidates.partition(at)
    threshold = candidates[at]
    greater = int(np.count_nonzero(candidates[at + 1 :] > threshold))
    equal = int(np.count_nonzero(candidates[:at] == threshold)) + candidates.size - at - greater
    return int(threshold), above + greater, equal


def _near(keys: np.ndarray, at: int) -> tuple[np.ndarray, int] | None:
    """The keys between two bounds that hold the one at rank `at` (a copy), and how many lie below
    them; None when the array is small, or the bounds, judged on a sample, miss it or hold too many."""
    numel = keys.size
    if numel <= 4 * SAMPLE_KEYS:
        return None
    sample = keys[_sample_positions(numel)]
    share = at / numel
    middle = int(share * SAMPLE_KEYS)
    margin = int(_MARGIN_SIGMAS * math.sqrt(SAMPLE_KEYS * share * (1 - share))) + 16
    first, last = middle - margin, middle + margin
    ranks = [min(max(0, rank), SAMPLE_KEYS - 1) for rank in (first, last)]
    sample.partition(ranks)
    # A bound past the sample's end is no bound: the extreme keys are then certainly held.
    low = sample[ranks[0]] if first > 0 else keys.dtype.type(0)
    high = sample[ranks[1]] if last < SAMPLE_KEYS - 1 else np.iinfo(keys.dtype).max
    most, below, gathered, parts = numel // MOST_GATHERED, 0, 0, []
    for span in spans(numel):
        part = keys[span]
        between = part >= low
        below += part.size - int(np.count_nonzero(between))
        between &= part <= high
        chosen = part[np.flatnonzero(between)]  # twice as fast as indexing with the mask
        gathered += chosen.size
        if gathered > most or below > at:
            return None
        parts.append(chosen)
    if at >= below + gathered:
        return None
    return np.concatenate(parts), below


@functools.lru_cache(maxsize=16)
def _sample_positions(numel: int) -> np.ndarray:
    """SAMPLE_KEYS positions drawn with a fixed seed, in increasing order (memory is read forwards)."""
    positions = np.sort(np.random.default_rng(0).integers(0, numel, SAMPLE_KEYS))
    positions.flags.writeable = False
    return positions


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
