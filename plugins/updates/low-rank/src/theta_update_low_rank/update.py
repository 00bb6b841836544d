"""The low-rank update type: W = base + B @ A (rank r, float32 factors) plus an exact residual."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from attrs import frozen

from theta import bits as _bits
from theta.errors import ThetaError
from theta.formats import TensorInfo
from theta.tensors import Tensor
from theta.updates import Update, UpdateType
from theta_update_low_rank.factors import finite, fitted_scale, gram_svd, top_factors
from theta_update_low_rank.products import check_exact, exact_factors, exact_product

MAX_RANK = 16
# Share of a change's energy, on rows the factors were not fitted to, above which the change
# is not treated as low-rank.
MAX_UNEXPLAINED = 0.5
# Share unexplained on every other sampled row above which the screen stops there: noise leaves
# nearly all of it, and a change that leaves this much there would not pass MAX_UNEXPLAINED.
NOISE_AT_A_GLANCE = 0.9
# At most this share unexplained, the screen's row space is used as it is, without an SVD of the whole.
SAMPLED_ROWS_ENOUGH = 0.01
# Power iterations from the screen's row space over every row: one brings it level with a full SVD.
REFINEMENTS = 1
# The ranks tried on the whole tensor's sample: those within this distance of the one the screen found best.
NEAR = 2
# Each rank is judged on about this many elements of the sample rows.
RANK_ELEMENTS = 1 << 14


# params["products"] of an update whose factors make an exact product (`products`); updates
# stored without it are decoded by `reconstruct`, which accumulates the outer products in order.
EXACT_PRODUCTS = "exact"
PRODUCT_ELEMENTS = 1 << 16


def approximate(base: np.ndarray, b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """base + B @ A for factors from `exact_factors`: a BLAS product, the same bits on every machine.

    Made PRODUCT_ELEMENTS at a time into scratch arrays made once: a float64 product of the
    whole block, allocated anew on a worker thread, costs more in page faults than it computes.
    """
    rows, cols = base.shape
    out = np.empty_like(base)
    step = max(1, PRODUCT_ELEMENTS // max(cols, 1))
    product = np.empty((min(step, rows), cols), dtype=np.float64)
    delta = np.empty(product.shape, dtype=base.dtype)
    b, a = b.astype(np.float64), a.astype(np.float64)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        exact_product(b[start:stop], a, out=product[: stop - start])
        rounded = delta[: stop - start]
        np.copyto(rounded, product[: stop - start], casting="same_kind")
        np.add(base[start:stop], rounded, out=out[start:stop])
    return out


def reconstruct(base: np.ndarray, b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """base + sum over k of outer(b[:, k], a[k]), accumulated in order with elementwise arithmetic:
    how updates stored without exact products are decoded.

    Elementwise IEEE operations give the same bits on every machine, which a BLAS matrix
    product of arbitrary factors does not promise; the residual depends on this.
    """
    b, a = b.astype(base.dtype, copy=False), a.astype(base.dtype, copy=False)
    delta, term = np.zeros(base.shape, dtype=base.dtype), np.empty(base.shape, dtype=base.dtype)
    for k in range(a.shape[0]):
        delta += np.multiply.outer(b[:, k], a[k], out=term)
    return np.add(base, delta, out=delta)


def best_rank(
    sample: np.ndarray,
    sample_bits: np.ndarray,
    b: np.ndarray,
    a: np.ndarray,
    rows_total: int,
    name: str,
    ranks: range | None = None,
) -> tuple[int, float]:
    """The rank (among `ranks`, default all) whose factors plus residual are estimated smallest, and that size.

    Judged on about RANK_ELEMENTS evenly spread elements of the sample rows: `b` holds those
    rows' left factors; the estimate scales the sample up to `rows_total` rows.
    """
    cols = sample.shape[1]
    ranks = ranks if ranks is not None else range(1, a.shape[0] + 1)
    picked = _bits.evenly_spaced(sample.size, RANK_ELEMENTS)
    at_row, at_col = np.divmod(picked, cols)
    values, bits = sample.reshape(-1)[picked], sample_bits.reshape(-1)[picked]
    b, a = b.astype(sample.dtype, copy=False)[at_row], a.astype(sample.dtype, copy=False)[:, at_col]
    delta = np.zeros(picked.size, dtype=sample.dtype)
    scale = sample.size / picked.size * rows_total / len(sample)
    found = (ranks.start, np.inf)
    for rank in range(1, ranks.stop):
        delta += b[:, rank - 1] * a[rank - 1]
        if rank < ranks.start:
            continue
        planes = _bits.residual(bits, values + delta, name)
        size = _bits.estimated_size(planes, sample_bits.itemsize) * scale + 4 * rank * (rows_total + cols)
        if size < found[1]:
            found = (rank, size)
    return found


def choose_rank(
    base: np.ndarray, target_bits: np.ndarray, b: np.ndarray, a: np.ndarray, name: str, near: int | None
) -> int:
    """The rank whose factors plus residual are estimated smallest, judged on evenly spaced rows.

    With `near` (the screen's choice), only the ranks within NEAR of it are tried.
    """
    rows = _bits.evenly_spaced(base.shape[0], _bits.SAMPLE_ELEMENTS // base.shape[1])
    top = a.shape[0]
    ranks = range(1, top + 1) if near is None else range(max(1, near - NEAR), min(top, near + NEAR) + 1)
    return best_rank(base[rows], target_bits[rows], b[rows], a, base.shape[0], name, ranks)[0]


@frozen
class Screen:
    """What a sample of rows says of a change: whether a low-rank update may pay, at which rank.

    `row_space` (MAX_RANK x cols, orthonormal rows, strongest first) was fitted on half the
    sampled rows; `unexplained` is the share of the other half's energy outside it. A matrix
    too small to be worth screening has neither.
    """

    pays: bool
    rank: int = 0
    row_space: np.ndarray | None = None
    unexplained: float = 1.0


def _unexplained(change: np.ndarray, rows: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The share of the change's energy on every other row of `rows` outside the rank-MAX_RANK row
    space of the rows between; those held-out rows, their coordinates in that space and the space."""
    fit, held_out = rows[0::2], rows[1::2]
    _, a = top_factors(change[fit], MAX_RANK)
    with np.errstate(all="ignore"):
        observed = finite(change[held_out])
        b = observed @ a.T
        unexplained = float(np.square(observed - b @ a).sum()) / max(float(np.square(observed).sum()), 1e-30)
    return unexplained, held_out, b, a


def values_and_change(base_bits: np.ndarray, target_bits: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The base's values and new - base, as float32 (float64 for float64 tensors)."""
    base = _bits.to_values(base_bits, name)
    return base, _bits.to_values(target_bits, name) - base


def screen(base_bits: np.ndarray, target_bits: np.ndarray, name: str) -> Screen:
    """Judge a change, before any work on the whole matrix, on a sample of its rows.

    Only the sampled rows' values are computed (a matrix too small to sample is judged whole).
    The row space is fitted on every other sampled row and tried on the rows between, so that
    noise (a full fine-tune), which no rank-16 space of other rows explains, is seen as such.
    """
    rows_total, cols = base_bits.shape
    rows = _bits.evenly_spaced(rows_total, max(8 * MAX_RANK, 2 * _bits.SAMPLE_ELEMENTS // cols))
    if rows.size >= rows_total // 2:
        # A small matrix: the full encoding is as cheap as a screen, once noise is ruled out.
        if rows_total >= 2 * MAX_RANK:
            change = values_and_change(base_bits, target_bits, name)[1]
            if _unexplained(change, np.arange(rows_total))[0] > MAX_UNEXPLAINED:
                return Screen(pays=False)
        return Screen(pays=True)
    glance = rows[::2]
    glanced = values_and_change(base_bits[glance], target_bits[glance], name)[1]
    if _unexplained(glanced, np.arange(glance.size))[0] > NOISE_AT_A_GLANCE:
        return Screen(pays=False)  # half the rows tell noise, which no rank-16 space of other rows explains
    sampled_bits = target_bits[rows]
    base, change = values_and_change(base_bits[rows], sampled_bits, name)
    unexplained, held_out, b, a = _unexplained(change, np.arange(rows.size))
    if unexplained > MAX_UNEXPLAINED:
        return Screen(pays=False)  # not a low-rank change: the other update types store such a change as well
    rank, size = best_rank(base[held_out], sampled_bits[held_out], b, a, rows_total, name)
    return Screen(pays=_bits.worthwhile(size, target_bits), rank=rank, row_space=a, unexplained=unexplained)


def factors(
    base: np.ndarray, target_bits: np.ndarray, change: np.ndarray, name: str, screened: Screen
) -> tuple[np.ndarray, np.ndarray, str]:
    """B, A and how they were found: from the screen's row space when it explains the change
    almost wholly (one matrix product), else from a truncated SVD of the whole change."""
    if screened.row_space is not None and screened.unexplained <= SAMPLED_ROWS_ENOUGH:
        work, a = finite(change), screened.row_space[: screened.rank]
        with np.errstate(all="ignore"):
            for _ in range(REFINEMENTS):  # a power iteration: the row space of every row, not only the sample's
                a = gram_svd((work @ a.T).T @ work)[2][: screened.rank].astype(np.float32)
            a = np.ascontiguousarray(a)
            return np.ascontiguousarray(work @ a.T), a, "row-sample"
    b, a = top_factors(change, MAX_RANK)
    rank = choose_rank(base, target_bits, b, a, name, screened.rank or None)
    return np.ascontiguousarray(b[:, :rank]), np.ascontiguousarray(a[:rank]), "svd"


def given_factors(side_data: Mapping[str, Tensor], rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """LoRA factors from `--update-data`: lora_a (r x in) and lora_b (out x r), as float32.

    Update data without either name is meant for another update type and is not used.
    """
    missing = [k for k in ("lora_a", "lora_b") if k not in side_data]
    if len(missing) == 1:
        raise ThetaError(
            f"low-rank update data lacks {', '.join(missing)}; give lora_a (r x {cols}) and lora_b ({rows} x r)"
        )
    a_t, b_t = side_data["lora_a"], side_data["lora_b"]
    for key, t in (("lora_a", a_t), ("lora_b", b_t)):
        if t.dtype not in _bits.FLOATS or len(t.shape) != 2:
            raise ThetaError(f"low-rank update data: {key} must be a 2-D float array, got {t.dtype} {list(t.shape)}")
    a = _bits.to_values(_bits.raw_bits(a_t), a_t.dtype).reshape(a_t.shape).astype(np.float32)
    b = _bits.to_values(_bits.raw_bits(b_t), b_t.dtype).reshape(b_t.shape).astype(np.float32)
    if a.shape[1] != cols or b.shape[0] != rows or a.shape[0] != b.shape[1]:
        raise ThetaError(
            f"low-rank update data: lora_a is {list(a.shape)} and lora_b {list(b.shape)}; for a weight of"
            f" {rows} x {cols} they must be r x {cols} and {rows} x r"
        )
    return b, a


@frozen
class LowRankUpdate(UpdateType):
    name = "low-rank"
    cost = 3
    screens_itself = True  # `screen` judges sampled rows before any work on the whole matrix

    def encode(
        self, tensor: Tensor, base: Tensor | None, side_data: Mapping[str, Tensor] | None = None
    ) -> Update | None:
        found = _bits.matrices(tensor, base)
        if found is None:
            return None
        target_bits, base_bits = found
        name = tensor.dtype
        rows, cols = base_bits.shape
        params: dict[str, Any] = {}
        with np.errstate(all="ignore"):
            if side_data and ("lora_a" in side_data or "lora_b" in side_data):
                base_values, change = values_and_change(base_bits, target_bits, name)
                b, a = given_factors(side_data, rows, cols)
                scale = fitted_scale(change, b, a)
                if scale != 1.0:
                    b, params["lora_scale"] = (b * np.float32(scale)).astype(np.float32), scale
                params["factors"] = "update-data"
            else:
                screened = screen(base_bits, target_bits, name)
                if not screened.pays:
                    return None
                base_values, change = values_and_change(base_bits, target_bits, name)
                b, a, params["factors"] = factors(base_values, target_bits, change, name, screened)
            b, a = exact_factors(b, a)
            planes = _bits.residual_by_rows(target_bits, lambda rows: approximate(base_values[rows], b[rows], a), name)
        if not _bits.worthwhile(a.nbytes + b.nbytes + _bits.estimated_size(planes, target_bits.itemsize), target_bits):
            return None
        params["rank"] = int(a.shape[0])
        params["products"] = EXACT_PRODUCTS
        arrays = {"a": Tensor.from_numpy(a), "b": Tensor.from_numpy(b), **_bits.residual_arrays(planes)}
        return Update(arrays=arrays, params=params)

    def decode(self, update: Update, base: Tensor | None, info: TensorInfo) -> Tensor:
        base_bits = _bits.base_bits(base, info, "a low-rank")
        rows, cols = base_bits.shape
        a, b = _bits.arrays(update.arrays, ("a", "b"), "a low-rank")
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != cols or b.shape[0] != rows or a.shape[0] != b.shape[1]:
            raise ThetaError(
                f"low-rank factors {list(b.shape)} @ {list(a.shape)} do not fit {info.dtype} {list(info.shape)}"
            )
        products = update.params.get("products")
        if products == EXACT_PRODUCTS:
            check_exact(b, a)
            combined = approximate
        elif products is None:
            combined = reconstruct
        else:
            raise ThetaError(f"low-rank update has products {products!r}, which this version does not know")
        with np.errstate(all="ignore"):
            return _bits.corrected_by_rows(
                lambda rows: combined(_bits.to_values(base_bits[rows], info.dtype), b[rows], a), update.arrays, info
            )
