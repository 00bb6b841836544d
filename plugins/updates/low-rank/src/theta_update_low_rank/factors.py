"""Estimating low-rank factors of a change: a truncated SVD with sign-normalised vectors."""

from __future__ import annotations

import numpy as np

OVERSAMPLE = 8
LARGEST = 1e30
POWER_ITERATIONS = 2


def finite(change: np.ndarray) -> np.ndarray:
    """The change as float32, with NaN, infinities and near-overflow values zeroed: the residual keeps those."""
    with np.errstate(over="ignore", invalid="ignore"):
        work = change.astype(np.float32)
        work[~(np.abs(work) < LARGEST)] = 0
    return work


def gram_svd(work: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """U, S, Vt of a matrix with few rows or few columns, strongest first, from its Gram matrix in float64.

    An eigendecomposition of the small side's Gram matrix is several times faster than LAPACK's
    SVD of the whole for such shapes; singular values below about 1e-7 of the largest lose
    their precision, which costs nothing here: the residual corrects every approximation.
    """
    wide = work.shape[0] <= work.shape[1]
    short = work if wide else work.T
    values, vectors = np.linalg.eigh(short.astype(np.float64) @ short.T.astype(np.float64))
    order = values.argsort()[::-1]
    s = np.sqrt(np.clip(values[order], 0, None))
    left = vectors[:, order]
    with np.errstate(divide="ignore", invalid="ignore"):
        right = np.where(s[:, None] > 0, (left.T @ short.astype(np.float64)) / s[:, None], 0.0)
    return (left, s, right) if wide else (right.T, s, left.T)


def top_factors(change: np.ndarray, max_rank: int) -> tuple[np.ndarray, np.ndarray]:
    """B (rows x k) and A (k x cols), float32, with B @ A the best rank-k approximation of `change`.

    Small matrices get a full SVD; larger ones a randomized range finder with a fixed seed
    (Halko, Martinsson and Tropp, 2011). Each singular vector pair is given the sign that makes
    the largest entry of its left vector positive, so equal input gives equal factors.
    """
    work = finite(change)
    rows, cols = work.shape
    k = min(max_rank, rows, cols)
    if min(rows, cols) <= 4 * (k + OVERSAMPLE):
        u, s, vt = gram_svd(work)
    else:
        probe = np.random.default_rng(0).standard_normal((cols, k + OVERSAMPLE)).astype(np.float32)
        q = np.linalg.qr(work @ probe)[0]
        for _ in range(POWER_ITERATIONS):
            q = np.linalg.qr(work @ (work.T @ q))[0]
        small_u, s, vt = np.linalg.svd(q.T @ work, full_matrices=False)
        u = q @ small_u
    u, s, vt = u[:, :k], s[:k], vt[:k]
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(k)])
    signs[signs == 0] = 1
    return np.ascontiguousarray((u * (s * signs)).astype(np.float32)), np.ascontiguousarray(
        (vt * signs[:, None]).astype(np.float32)
    )


def fitted_scale(change: np.ndarray, b: np.ndarray, a: np.ndarray) -> float:
    """The factor c that best fits change ≈ c * (b @ a), rounded to float32; 1.0 when it is near 1.

    LoRA adapters are often saved without their alpha / r scaling; this recovers it.
    """
    observed = change.reshape(-1).astype(np.float64)
    keep = np.abs(observed) < LARGEST
    product = (b.astype(np.float64) @ a.astype(np.float64)).reshape(-1)[keep]
    norm = float(product @ product)
    if norm == 0.0:
        return 1.0
    scale = float(np.float32(float(product @ observed[keep]) / norm))
    return 1.0 if abs(scale - 1.0) < 1e-3 or not np.isfinite(scale) or scale == 0.0 else scale
