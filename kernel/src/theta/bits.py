"""Exact corrections: float views of raw bits, XOR residuals and a stored-size estimate.

An approximation is computed with elementwise IEEE arithmetic only (no BLAS, whose results
depend on the machine), cast to the tensor's dtype, and XORed with the committed bits. The
residual is byte-grouped (all highest bytes first) so the runs of zero bytes are long.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np

from theta.errors import ThetaError
from theta.formats import TensorInfo
from theta.tensors import Tensor, dtype

FLOATS = ("float16", "bfloat16", "float32", "float64")
UINTS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
GAIN = 0.9
SAMPLE_ELEMENTS = 1 << 16
# Byte planes are judged on a strided sample of about this many bytes each: the order-0
# entropy of 64 KiB is within 0.1% of that of the whole plane, at a sixteenth of the cost of 1 MiB.
ESTIMATE_BYTES = 1 << 16
# Approximations and corrections of large matrices are made this many elements at a time.
ROW_BLOCK_ELEMENTS = 1 << 20


def little_uint(itemsize: int) -> np.dtype:
    """Unsigned elements of `itemsize` bytes, little-endian: how tensors lay out their bytes."""
    return np.dtype(UINTS[itemsize]).newbyteorder("<")


def raw_bits(tensor: Tensor) -> np.ndarray:
    """The elements as little-endian unsigned integers of their width, flat."""
    return np.frombuffer(tensor.data, dtype=little_uint(dtype(tensor.dtype).itemsize))


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """Rows and columns of a weight seen as a matrix (first axis by the rest); None below 2-D."""
    if len(shape) < 2 or 0 in shape:
        return None
    return shape[0], int(np.prod(shape[1:]))


def matrices(tensor: Tensor, base: Tensor | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The new bits and the base's bits, both as matrices; None unless a float matrix has a base like it."""
    shape = matrix_shape(tensor.shape)
    if base is None or shape is None or not tensor.same_layout(base) or tensor.dtype not in FLOATS:
        return None
    return raw_bits(tensor).reshape(shape), raw_bits(base).reshape(shape)


def arrays(update_arrays: Mapping[str, Tensor], names: tuple[str, ...], kind: str) -> list[np.ndarray]:
    """The named arrays of an update being decoded; an error naming what is missing."""
    missing = [n for n in names if n not in update_arrays]
    if missing:
        raise ThetaError(f"{kind} update lacks its {', '.join(missing)} array; its metadata is damaged")
    return [update_arrays[n].numpy() for n in names]


def base_bits(base: Tensor | None, info: TensorInfo, kind: str) -> np.ndarray:
    """The base's bits as a matrix, for decoding; an error unless it has the layout `info`."""
    shape = matrix_shape(info.shape)
    if base is None or shape is None or base.dtype != info.dtype or base.shape != info.shape:
        raise ThetaError(f"{kind} update needs a base of {info.dtype} {list(info.shape)}")
    return raw_bits(base).reshape(shape)


def base_values(base: Tensor | None, info: TensorInfo, kind: str) -> np.ndarray:
    """The base's values as a matrix, for decoding; an error unless it has the layout `info`."""
    return to_values(base_bits(base, info, kind), info.dtype)


def to_values(bits: np.ndarray, name: str) -> np.ndarray:
    """Raw bits to numbers: float64 stays float64, every other float becomes float32 (exactly)."""
    if name == "bfloat16":
        return (bits.astype(np.uint32) << 16).view(np.float32)
    if name == "float16":
        return bits.view(np.float16).astype(np.float32)
    return bits.view(np.float32 if name == "float32" else np.float64)


def to_bits(values: np.ndarray, name: str) -> np.ndarray:
    """Numbers to the raw bits of dtype `name`, rounding to nearest even (NaN stays NaN)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "bfloat16":
            wide = values.astype(np.float32, copy=False).view(np.uint32)
            rounding = wide >> 16
            rounding &= 1
            rounding += np.uint32(0x7FFF)
            rounding += wide
            rounding >>= 16
            rounded = rounding.astype(np.uint16)
            nan = np.isnan(values)
            if nan.any():
                rounded[nan] = ((wide[nan] >> 16) | 0x40).astype(np.uint16)
            return rounded
        if name == "float16":
            return values.astype(np.float16).view(np.uint16)
        return values.astype(np.float32 if name == "float32" else np.float64).view(UINTS[dtype(name).itemsize])


def byte_planes(block: bytes | memoryview | np.ndarray, itemsize: int) -> np.ndarray:
    """The bytes of `block` (whole elements of `itemsize` bytes) byte-grouped, highest bytes first:
    an array of `itemsize` rows (planes)."""
    by_element = np.frombuffer(block, dtype=np.uint8).reshape(-1, itemsize)
    out = np.empty((itemsize, by_element.shape[0]), dtype=np.uint8)
    for plane in range(itemsize):
        out[plane] = by_element[:, itemsize - 1 - plane]  # one plane at a time: a transposed copy is 5x slower
    return out


def join_planes(planes: Iterable[bytes | memoryview | np.ndarray], into: np.ndarray) -> None:
    """Fill `into` (unsigned elements) from their byte planes, highest first: the inverse of `byte_planes`.

    Shifting in one plane at a time makes contiguous passes, a fifth faster than scattering
    each plane to every itemsize-th byte."""
    for index, plane in enumerate(planes):
        values = np.frombuffer(plane, dtype=np.uint8)
        if index == 0:
            np.copyto(into, values)
        else:
            into <<= 8
            np.bitwise_or(into, values, out=into)


def group_bytes(bits: np.ndarray) -> np.ndarray:
    """All highest bytes, then the next ones, ... down to the lowest: a flat uint8 array."""
    return byte_planes(np.ascontiguousarray(bits).reshape(-1), bits.itemsize).reshape(-1)


def ungroup_bytes(planes: np.ndarray, itemsize: int) -> np.ndarray:
    by_plane = planes.reshape(itemsize, -1)
    out = np.empty(by_plane.shape[1] * itemsize, dtype=np.uint8)
    join_planes((np.ascontiguousarray(row) for row in by_plane), out.view(little_uint(itemsize)))
    return out.view(UINTS[itemsize])


def evenly_spaced(total: int, count: int) -> np.ndarray:
    """About `count` (at least one, at most `total`) evenly spaced indices below `total`."""
    spaced = np.linspace(0, total - 1, max(1, min(total, count))).astype(np.int64)
    return spaced[np.concatenate(([True], spaced[1:] != spaced[:-1]))] if spaced.size else spaced


def estimated_size(planes: np.ndarray, itemsize: int) -> float:
    """About what zstd makes of byte-grouped data: the order-0 entropy of each byte plane.

    Large planes are judged on an evenly strided sample of about ESTIMATE_BYTES bytes.
    """
    plane_size = planes.size // itemsize
    step = max(1, plane_size // ESTIMATE_BYTES)
    total = 0.0
    for plane in planes.reshape(itemsize, -1):
        counts = np.bincount(plane[::step], minlength=256)
        p = counts[counts > 0] / counts.sum()
        total -= float((p * np.log2(p)).sum()) * plane_size / 8
    return total


def worthwhile(size: float, target_bits: np.ndarray) -> bool:
    """Whether an encoding of about `size` stored bytes beats the dense tensor by at least 10%.

    A smaller gain is not worth making the tensor depend on its previous version.
    """
    flat = target_bits.reshape(-1)
    step = max(1, flat.size // ESTIMATE_BYTES)
    return size < GAIN * step * estimated_size(group_bytes(flat[::step]), flat.itemsize)


def residual(target_bits: np.ndarray, approx: np.ndarray, name: str) -> np.ndarray:
    """Byte-grouped XOR of the committed bits and the approximation cast to dtype `name`."""
    return group_bytes(_flipped(target_bits, approx, name))


def _flipped(target_bits: np.ndarray, approx: np.ndarray, name: str) -> np.ndarray:
    flips = to_bits(approx, name).reshape(-1)
    return np.bitwise_xor(flips, target_bits.reshape(-1), out=flips)


def row_blocks(rows: int, cols: int) -> Iterator[slice]:
    """Consecutive blocks of rows of about ROW_BLOCK_ELEMENTS elements (at least one row each)."""
    step = max(1, ROW_BLOCK_ELEMENTS // max(cols, 1))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


def residual_by_rows(target_bits: np.ndarray, approx: Callable[[slice], np.ndarray], name: str) -> np.ndarray:
    """`residual` of a matrix whose approximation `approx(rows)` makes a block of rows at a time.

    The same bytes, holding one block of the approximation at a time instead of all of it.
    """
    rows, cols = target_bits.shape
    planes = np.empty((target_bits.itemsize, target_bits.size), dtype=np.uint8)
    for block in row_blocks(rows, cols):
        flips = _flipped(target_bits[block], approx(block), name)
        planes[:, block.start * cols : block.stop * cols] = byte_planes(flips, target_bits.itemsize)
    return planes.reshape(-1)


def corrected(approx: np.ndarray, update_arrays: Mapping[str, Tensor], info: TensorInfo) -> Tensor:
    """The exact tensor: the approximation's bits XOR the stored residual (absent when zero)."""
    shape = matrix_shape(info.shape) or (1, approx.size)
    whole = approx.reshape(shape)
    return corrected_by_rows(lambda rows: whole[rows], update_arrays, info)


def corrected_by_rows(
    approx: Callable[[slice], np.ndarray], update_arrays: Mapping[str, Tensor], info: TensorInfo
) -> Tensor:
    """`corrected` for an approximation `approx(rows)` made a block of rows of the matrix at a time."""
    rows, cols = matrix_shape(info.shape) or (1, math.prod(info.shape))
    itemsize = dtype(info.dtype).itemsize
    planes = None
    if "residual" in update_arrays:
        planes = update_arrays["residual"].numpy()
        if planes.size != rows * cols * itemsize:
            raise ThetaError(f"residual holds {planes.size} bytes, expected {rows * cols * itemsize}")
        planes = planes.reshape(itemsize, -1)
    out = np.empty(rows * cols, dtype=UINTS[itemsize])
    for block in row_blocks(rows, cols):
        span = slice(block.start * cols, block.stop * cols)
        bits = to_bits(approx(block), info.dtype).reshape(-1)
        if planes is not None:
            bits = np.bitwise_xor(bits, ungroup_bytes(planes[:, span], itemsize), out=bits)
        out[span] = bits
    return Tensor.from_numpy(out.reshape(info.shape), dtype_name=info.dtype)


def residual_arrays(planes: np.ndarray) -> dict[str, Tensor]:
    """The residual as an update array, or nothing when the approximation is already exact."""
    return {"residual": Tensor.from_numpy(planes)} if planes.any() else {}
