"""Three ways to store the sorted positions of changed elements; the smallest one is kept.

- `positions`: the flat indices, int32 (int64 for tensors of 2**31 elements or more);
- `gaps`: the differences between successive positions (the first counted from -1), in the
  narrowest unsigned type that holds the largest;
- `bitmap`: one bit per element (numpy.packbits, most significant bit first).
"""

from __future__ import annotations

import numpy as np

FORMS = ("positions", "gaps", "bitmap")
FRAME_BYTES = 16
_UINTS = (np.uint8, np.uint16, np.uint32, np.uint64)


def encodings(positions: np.ndarray, numel: int) -> dict[str, np.ndarray]:
    gaps = np.diff(positions, prepend=-1)
    largest = int(gaps.max()) if gaps.size else 0
    narrow = next(t for t in _UINTS if largest <= np.iinfo(t).max)
    mask = np.zeros(numel, dtype=bool)
    mask[positions] = True
    return {
        "positions": positions.astype(np.int32 if numel < 2**31 else np.int64),
        "gaps": gaps.astype(narrow),
        "bitmap": np.packbits(mask),
    }


def stored_size(array: np.ndarray) -> float:
    """About what the store keeps of `array`: raw, or compressed when that is smaller.

    The compressed size is estimated as the order-0 entropy of each of its byte positions,
    plus a frame header.
    """
    planes = array.view(np.uint8).reshape(-1, array.itemsize).T
    total = 0.0
    for plane in planes:
        counts = np.bincount(plane, minlength=256)
        p = counts[counts > 0] / plane.size
        total -= float((p * np.log2(p)).sum()) * plane.size / 8
    return min(float(array.nbytes), total + FRAME_BYTES)


def decoded(form: str, array: np.ndarray, numel: int) -> np.ndarray:
    """The flat positions (int64) that `array` holds in `form`."""
    if form == "positions":
        return array.astype(np.int64)
    if form == "gaps":
        return np.cumsum(array, dtype=np.int64) - 1
    return _set_bits(array)


def _set_bits(bitmap: np.ndarray) -> np.ndarray:
    """The positions of the set bits, found from the nonzero bytes: an index of a few percent of
    the elements is read without unpacking one byte per element."""
    flat = bitmap.reshape(-1)
    occupied = np.flatnonzero(flat)
    rows, bits = np.nonzero(np.unpackbits(flat[occupied]).reshape(-1, 8))
    return occupied[rows] * 8 + bits
