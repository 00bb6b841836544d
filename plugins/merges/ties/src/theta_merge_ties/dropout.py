"""DARE's random drop, reproducible on every machine.

Each side's keep mask comes from its own PCG64 generator seeded with
`SeedSequence([seed, w0, ..., w7, side])`, where w0..w7 are the sha256 of the parameter's
name (UTF-8) as eight big-endian 32-bit words and side is 0 for ours, 1 for theirs. Element i
is kept when the i-th raw 64-bit output x satisfies `(x >> 11) * 2**-53 < density` (the
float64 draw NumPy's `Generator.random()` would make). PCG64 and SeedSequence are fixed
algorithms, so the same merge gives the same bits anywhere.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import numpy as np

from theta.merges import CHUNK_ELEMENTS, spans


def generator(seed: int, name: str, side: int) -> np.random.PCG64:
    words = np.frombuffer(hashlib.sha256(name.encode()).digest(), dtype=">u4").tolist()
    return np.random.PCG64(np.random.SeedSequence([seed, *words, side]))


def keep_masks(
    seed: int, name: str, side: int, density: float, numel: int, size: int = CHUNK_ELEMENTS
) -> Iterator[tuple[slice, np.ndarray]]:
    """(span, mask) for consecutive spans of `size` elements of the flattened tensor: True where
    the element is kept. The masks do not depend on `size`."""
    bits = generator(seed, name, side)
    limit = np.uint64(math.ceil(density * 2.0**53))
    for span in spans(numel, size):
        raw = bits.random_raw(span.stop - span.start)
        yield span, (raw >> np.uint64(11)) < limit
