"""Tensors as the kernel sees them: a dtype name, a shape and little-endian C-order bytes.

The kernel never does arithmetic on tensors, so it needs no ML framework. Dtypes that NumPy
lacks (bfloat16, float8) are carried as raw bits; `Tensor.numpy()` shows them as unsigned
integers of the same width.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from attrs import field, frozen

from theta.errors import ThetaError


@frozen(kw_only=True)
class DType:
    name: str
    itemsize: int
    numpy_name: str
    native: bool


_DTYPES = [
    DType(name="bool", itemsize=1, numpy_name="bool", native=True),
    DType(name="uint8", itemsize=1, numpy_name="uint8", native=True),
    DType(name="int8", itemsize=1, numpy_name="int8", native=True),
    DType(name="uint16", itemsize=2, numpy_name="uint16", native=True),
    DType(name="int16", itemsize=2, numpy_name="int16", native=True),
    DType(name="uint32", itemsize=4, numpy_name="uint32", native=True),
    DType(name="int32", itemsize=4, numpy_name="int32", native=True),
    DType(name="uint64", itemsize=8, numpy_name="uint64", native=True),
    DType(name="int64", itemsize=8, numpy_name="int64", native=True),
    DType(name="float16", itemsize=2, numpy_name="float16", native=True),
    DType(name="float32", itemsize=4, numpy_name="float32", native=True),
    DType(name="float64", itemsize=8, numpy_name="float64", native=True),
    DType(name="complex64", itemsize=8, numpy_name="complex64", native=True),
    DType(name="complex128", itemsize=16, numpy_name="complex128", native=True),
    DType(name="bfloat16", itemsize=2, numpy_name="uint16", native=False),
    DType(name="float8_e4m3fn", itemsize=1, numpy_name="uint8", native=False),
    DType(name="float8_e5m2", itemsize=1, numpy_name="uint8", native=False),
]
DTYPES: dict[str, DType] = {d.name: d for d in _DTYPES}


def dtype(name: str) -> DType:
    try:
        return DTYPES[name]
    except KeyError:
        raise ThetaError(f"unknown dtype {name!r}; known: {', '.join(DTYPES)}") from None


def sha256_hex(data: Any) -> str:
    return hashlib.sha256(data).hexdigest()


def _as_bytes_view(data: Any) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


COMPARED_WORDS = 1 << 17  # same_bits compares 1 MiB at a time


@frozen(kw_only=True, eq=False)
class Tensor:
    """One parameter: `data` holds exactly `nbytes` little-endian bytes in C order."""

    dtype: str
    shape: tuple[int, ...] = field(converter=lambda s: tuple(int(d) for d in s))
    data: memoryview = field(converter=_as_bytes_view)

    def __attrs_post_init__(self) -> None:
        expected = self.numel * dtype(self.dtype).itemsize
        if len(self.data) != expected:
            raise ThetaError(
                f"tensor of dtype {self.dtype} and shape {list(self.shape)} needs {expected} bytes,"
                f" got {len(self.data)}"
            )

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return len(self.data)

    def sha256(self) -> str:
        return sha256_hex(self.data)

    def numpy(self) -> np.ndarray:
        """A read-only NumPy view; bfloat16 and float8 appear as their raw unsigned bits."""
        np_dtype = np.dtype(dtype(self.dtype).numpy_name).newbyteorder("<")
        return np.frombuffer(self.data, dtype=np_dtype).reshape(self.shape)

    @classmethod
    def from_numpy(cls, array: np.ndarray, dtype_name: str | None = None) -> Tensor:
        """Wrap an array; `dtype_name` names a non-native dtype whose raw bits `array` holds."""
        name = dtype_name or array.dtype.name
        if name not in DTYPES:
            raise ThetaError(f"unsupported NumPy dtype {array.dtype}")
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        contiguous = np.ascontiguousarray(little)
        return cls(dtype=name, shape=array.shape, data=contiguous.reshape(-1).view(np.uint8).data)

    def same_layout(self, other: Tensor) -> bool:
        return self.dtype == other.dtype and self.shape == other.shape

    def same_bits(self, other: Tensor) -> bool:
        """The same dtype, shape and bytes (a comparison, eight times cheaper than hashing one of them)."""
        if not self.same_layout(other):  # the layout fixes the length
            return False
        mine, theirs = np.frombuffer(self.data, np.uint8), np.frombuffer(other.data, np.uint8)
        whole = len(mine) // 8 * 8  # compared as 64-bit words: a boolean per word, not per byte
        words = mine[:whole].view(np.uint64), theirs[:whole].view(np.uint64)
        for start in range(0, words[0].size, COMPARED_WORDS):  # bounded scratch, and it stops at a difference
            end = start + COMPARED_WORDS
            if not np.array_equal(words[0][start:end], words[1][start:end]):
                return False
        return bool(np.array_equal(mine[whole:], theirs[whole:]))
