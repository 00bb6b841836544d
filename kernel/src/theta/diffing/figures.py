"""Figures of how a tensor changed, in float64, a slice at a time so memory stays bounded."""

from __future__ import annotations

import math

import numpy as np
from attrs import frozen

from theta.bits import UINTS, raw_bits, to_values
from theta.errors import ThetaError
from theta.tensors import Tensor, dtype

CHUNK_ELEMENTS = 1 << 21
ML_DTYPES = ("float8_e4m3fn", "float8_e5m2")


@frozen(kw_only=True)
class Figures:
    l2: float | None = None
    relative: float | None = None
    max_abs: float | None = None
    changed_fraction: float | None = None
    cosine: float | None = None


def raw_elements(tensor: Tensor) -> np.ndarray:
    """The elements' bits, flat: unsigned integers of their width (pairs of uint64 for complex128)."""
    itemsize = dtype(tensor.dtype).itemsize
    if itemsize in UINTS:
        return raw_bits(tensor)
    return np.frombuffer(tensor.data, dtype=np.dtype("<u8")).reshape(-1, itemsize // 8)


def numeric(name: str) -> bool:
    return not name.startswith("complex")


def as_float64(bits: np.ndarray, name: str) -> np.ndarray:
    """Raw bits of dtype `name` (flat) as float64 numbers, exactly where float64 can hold them."""
    if name == "bfloat16" or name == "float16" or name == "float32":
        return to_values(bits, name).astype(np.float64)
    if name in ML_DTYPES:
        try:
            import ml_dtypes
        except ImportError:  # pragma: no cover - ml_dtypes is in the test environment
            raise ThetaError(f"figures for {name} tensors need ml_dtypes: `pip install ml_dtypes`") from None
        return bits.view(getattr(ml_dtypes, name)).astype(np.float64)
    return bits.view(np.dtype(dtype(name).numpy_name).newbyteorder("<")).astype(np.float64)


def compare(old: Tensor, new: Tensor) -> Figures:
    """How `new` differs from `old`; both have the same shape (the dtypes may differ)."""
    if old.shape != new.shape:
        raise ValueError("figures need tensors of the same shape")
    old_bits, new_bits = raw_elements(old), raw_elements(new)
    count = old.numel
    if count == 0:
        return Figures()
    same_dtype = old.dtype == new.dtype
    with_values = numeric(old.dtype) and numeric(new.dtype)
    changed = 0
    sum_sq = old_sq = new_sq = dot = 0.0
    max_abs = 0.0
    for start in range(0, count, CHUNK_ELEMENTS):
        a_bits, b_bits = old_bits[start : start + CHUNK_ELEMENTS], new_bits[start : start + CHUNK_ELEMENTS]
        if same_dtype:
            differs = a_bits != b_bits
            changed += int(np.count_nonzero(differs if differs.ndim == 1 else differs.any(axis=1)))
        if not with_values:
            continue
        a, b = as_float64(a_bits, old.dtype), as_float64(b_bits, new.dtype)
        if not same_dtype:
            changed += int(np.count_nonzero(~((a == b) | (np.isnan(a) & np.isnan(b)))))
        with np.errstate(invalid="ignore", over="ignore"):
            delta = b - a
            sum_sq += float(np.dot(delta, delta))
            old_sq += float(np.dot(a, a))
            new_sq += float(np.dot(b, b))
            dot += float(np.dot(a, b))
            max_abs = max(max_abs, float(np.max(np.abs(delta))))
    if not with_values:
        return Figures(changed_fraction=changed / count)
    l2, old_norm, new_norm = math.sqrt(sum_sq), math.sqrt(old_sq), math.sqrt(new_sq)
    cosine = None
    if old_norm > 0 and new_norm > 0 and math.isfinite(dot):
        cosine = max(-1.0, min(1.0, dot / (old_norm * new_norm)))
    return Figures(
        l2=_finite(l2),
        relative=_finite(l2 / old_norm) if old_norm > 0 else None,
        max_abs=_finite(max_abs),
        changed_fraction=changed / count,
        cosine=_finite(cosine) if cosine is not None else None,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
