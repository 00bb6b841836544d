"""Factors whose matrix product is exact, so that a BLAS product gives the same bits everywhere.

Each row of B and each column of A is rounded to multiples of one power of two, with at most
`factor_bits(rank)` significant bits for its largest element. Every product b[i, k] * a[k, j]
is then an integer multiple of one power of two (that of row i times that of column j) below
2**(2 * bits), and so is every partial sum over k, below rank * 2**(2 * bits) <= 2**53: all
exact in float64, in whatever order and with or without fused multiply-adds a BLAS adds them.
The product is rounded once to the weight's working dtype (float32, or float64 for float64
weights), and the base added elementwise.
"""

from __future__ import annotations

import math

import numpy as np

from theta.errors import ThetaError

FLOAT64_BITS = 53
FLOAT32_BITS = 24  # a float32 holds integers up to 2**24 exactly
# Factor elements below this are zeroed, so that every step is a normal float32 and the rounded
# factors are float32 values exactly (the residual corrects what they leave out).
TINY = 2.0**-100


def factor_bits(rank: int) -> int:
    """Significant bits kept per factor element, so that `rank` products of two sum exactly in float64."""
    return min(FLOAT32_BITS, (FLOAT64_BITS - math.ceil(math.log2(max(rank, 1)))) // 2)


def _steps(factor: np.ndarray, axis: int, bits: int) -> np.ndarray:
    """Per row (axis 1) or column (axis 0): the power of two whose multiples keep `bits` bits of the largest."""
    peak = np.max(np.abs(factor.astype(np.float64)), axis=axis, keepdims=True)
    exponent = np.frexp(peak)[1]  # peak < 2**exponent (0 for a row of zeros)
    return np.ldexp(1.0, exponent - bits)


def _rounded(factor: np.ndarray, axis: int, bits: int) -> np.ndarray:
    wide = factor.astype(np.float64)
    with np.errstate(invalid="ignore"):
        wide[~(np.abs(wide) >= TINY) | ~np.isfinite(wide)] = 0
    for _ in range(2):  # again when rounding carried a largest element up to the next power of two
        steps = _steps(wide, axis, bits)
        wide = np.round(wide / steps) * steps
    return wide.astype(np.float32)


def exact_factors(b: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """B (rows of the weight x r) and A (r x columns) as float32, rounded so that B @ A is exact in float64.

    Non-finite and tiny elements become 0."""
    bits = factor_bits(a.shape[0])
    return _rounded(b, 1, bits), _rounded(a, 0, bits)


def _holds_exact(factor: np.ndarray, axis: int, bits: int) -> bool:
    wide = factor.astype(np.float64)
    if not np.isfinite(wide).all():
        return False
    scaled = wide / _steps(wide, axis, bits)
    return bool((np.abs(scaled) <= 2.0**bits).all() and (scaled == np.round(scaled)).all())


def check_exact(b: np.ndarray, a: np.ndarray) -> None:
    """An error unless the factors are as `exact_factors` makes them (damaged metadata or objects)."""
    bits = factor_bits(a.shape[0])
    if not (_holds_exact(b, 1, bits) and _holds_exact(a, 0, bits)):
        raise ThetaError(
            "low-rank update's factors are not rounded for an exact product, as its parameters say;"
            " its objects are damaged (`git theta fsck` finds which)"
        )


def exact_product(b: np.ndarray, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """B @ A of factors from `exact_factors` (any rows of B), exactly, in float64."""
    return np.matmul(b.astype(np.float64, copy=False), a.astype(np.float64, copy=False), out=out)
