"""Exact corrections: float views of raw bits, XOR residuals and a stored-size estimate.

An approximation is computed with elementwise IEEE arithmetic only (no BLAS, whose results
depend on the machine), cast to the tensor's dtype, and XORed with the committed bits. The
residual is byte-grouped (all highest bytes first) so the runs of zero bytes are long.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from theta.errors import ThetaError
from theta.formats import TensorInfo
from theta.tensors import Tensor, dtype

FLOATS = ("float16", "bfloat16", "float32", "float64")
UINTS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
GAIN = 0.9
SAMPLE_ELEMENTS = 1 << 16
ESTIMATE_BYTES = 1 << 20


def raw_bits(tensor: Tensor) -> np.ndarray:
    """The elements as little-endian unsigned integers of their width, flat."""
    return np.frombuffer(tensor.data, dtype=np.dtype(UINTS[dtype(tensor.dtype).itemsize]).newbyteorder("<"))


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """Rows and columns of a weight seen as a matrix (first axis by the rest); None below 2-D."""
    if len(shape) < 2 or 0 in shape:
        return None
    return shape[0], int(np.prod(shape[1:]))


def operands(tensor: Tensor, base: Tensor | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The new bits and the base's values, both as matrices; None unless a float matrix has a base like it."""
    shape = matrix_shape(tensor.shape)
    if base is None or shape is None or not tensor.same_layout(base) or tensor.dtype not in FLOATS:
        return None
    return raw_bits(tensor).reshape(shape), to_values(raw_bits(base), base.dtype).reshape(shape)


def arrays(update_arrays: Mapping[str, Tensor], names: tuple[str, ...], kind: str) -> list[np.ndarray]:
    """The named arrays of an update being decoded; an error naming what is missing."""
    missing = [n for n in names if n not in update_arrays]
    if missing:
        raise ThetaError(f"{kind} update lacks its {', '.join(missing)} array; its metadata is damaged")
    return [update_arrays[n].numpy() for n in names]


def base_values(base: Tensor | None, info: TensorInfo, kind: str) -> np.ndarray:
    """The base's values as a matrix, for decoding; an error unless it has the layout `info`."""
    shape = matrix_shape(info.shape)
    if base is None or shape is None or base.dtype != info.dtype or base.shape != info.shape:
        raise ThetaError(f"{kind} update needs a base of {info.dtype} {list(info.shape)}")
    return to_values(raw_bits(base), base.dtype).reshape(shape)


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
            wide = values.astype(np.float32).view(np.uint32)
            rounded = ((wide + np.uint32(0x7FFF) + ((wide >> 16) & 1)) >> 16).astype(np.uint16)
            return np.where(np.isnan(values), ((wide >> 16) | 0x40).astype(np.uint16), rounded)
        if name == "float16":
            return values.astype(np.float16).view(np.uint16)
        return values.astype(np.float32 if name == "float32" else np.float64).view(UINTS[dtype(name).itemsize])


def group_bytes(bits: np.ndarray) -> np.ndarray:
    """All highest bytes, then the next ones, ... down to the lowest: a flat uint8 array."""
    grouped = np.ascontiguousarray(bits).view(np.uint8).reshape(-1, bits.itemsize)[:, ::-1].T
    return np.ascontiguousarray(grouped).reshape(-1)


def ungroup_bytes(planes: np.ndarray, itemsize: int) -> np.ndarray:
    return np.ascontiguousarray(planes.reshape(itemsize, -1)[::-1].T).reshape(-1).view(UINTS[itemsize])


def evenly_spaced(total: int, count: int) -> np.ndarray:
    """About `count` (at least one, at most `total`) evenly spaced indices below `total`."""
    return np.unique(np.linspace(0, total - 1, max(1, min(total, count))).astype(np.int64))


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
    return group_bytes(np.bitwise_xor(target_bits.reshape(-1), to_bits(approx, name).reshape(-1)))


def corrected(approx: np.ndarray, update_arrays: Mapping[str, Tensor], info: TensorInfo) -> Tensor:
    """The exact tensor: the approximation's bits XOR the stored residual (absent when zero)."""
    bits = to_bits(approx, info.dtype).reshape(-1)
    if "residual" in update_arrays:
        planes = update_arrays["residual"].numpy()
        if planes.size != bits.size * bits.itemsize:
            raise ThetaError(f"residual holds {planes.size} bytes, expected {bits.size * bits.itemsize}")
        bits = np.bitwise_xor(bits, ungroup_bytes(planes, bits.itemsize))
    return Tensor.from_numpy(bits.reshape(info.shape), dtype_name=info.dtype)


def residual_arrays(planes: np.ndarray) -> dict[str, Tensor]:
    """The residual as an update array, or nothing when the approximation is already exact."""
    return {"residual": Tensor.from_numpy(planes)} if planes.any() else {}
