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
from theta_update_low_rank.factors import fitted_scale, top_factors

MAX_RANK = 16
# Share of a change's energy, on rows the factors were not fitted to, above which the change
# is not treated as low-rank.
MAX_UNEXPLAINED = 0.5


def reconstruct(base: np.ndarray, b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """base + sum over k of outer(b[:, k], a[k]), accumulated in order with elementwise arithmetic.

    Elementwise IEEE operations give the same bits on every machine, which a BLAS matrix
    product does not promise; the residual depends on this.
    """
    b, a = b.astype(base.dtype, copy=False), a.astype(base.dtype, copy=False)
    delta, term = np.zeros(base.shape, dtype=base.dtype), np.empty(base.shape, dtype=base.dtype)
    for k in range(a.shape[0]):
        delta += np.multiply.outer(b[:, k], a[k], out=term)
    return base + delta


def best_rank(
    sample: np.ndarray, sample_bits: np.ndarray, b: np.ndarray, a: np.ndarray, rows_total: int, name: str
) -> tuple[int, float]:
    """The rank whose factors plus residual are estimated smallest, and that size, judged on sample rows.

    `b` holds the sample rows' left factors; the estimate scales the sample up to `rows_total` rows.
    """
    cols = sample.shape[1]
    b, a = b.astype(sample.dtype, copy=False), a.astype(sample.dtype, copy=False)
    delta = np.zeros(sample.shape, dtype=sample.dtype)
    found = (1, np.inf)
    for rank in range(1, a.shape[0] + 1):
        delta += np.multiply.outer(b[:, rank - 1], a[rank - 1])
        planes = _bits.residual(sample_bits, sample + delta, name)
        size = _bits.estimated_size(planes, sample_bits.itemsize) * rows_total / len(sample) + 4 * rank * (
            rows_total + cols
        )
        if size < found[1]:
            found = (rank, size)
    return found


def choose_rank(base: np.ndarray, target_bits: np.ndarray, b: np.ndarray, a: np.ndarray, name: str) -> int:
    """The rank whose factors plus residual are estimated smallest, judged on evenly spaced rows."""
    rows = _bits.evenly_spaced(base.shape[0], _bits.SAMPLE_ELEMENTS // base.shape[1])
    return best_rank(base[rows], target_bits[rows], b[rows], a, base.shape[0], name)[0]


def promising(base: np.ndarray, target_bits: np.ndarray, change: np.ndarray, name: str) -> bool:
    """Whether a low-rank update could pay, judged before the full SVD on a sample of rows.

    The row space is fitted on every other sampled row and tried on the rows between, so that
    noise (a full fine-tune), which no rank-16 space of other rows explains, is seen as such.
    """
    rows_total, cols = base.shape
    rows = _bits.evenly_spaced(rows_total, max(8 * MAX_RANK, 2 * _bits.SAMPLE_ELEMENTS // cols))
    if rows.size >= rows_total // 2:
        return True  # a small matrix: the full encoding is as cheap as a screen
    fit, held_out = rows[0::2], rows[1::2]
    _, a = top_factors(change[fit], MAX_RANK)
    with np.errstate(all="ignore"):
        observed = np.nan_to_num(change[held_out].astype(np.float32))
        b = observed @ a.T
        unexplained = float(np.square(observed - b @ a).sum()) / max(float(np.square(observed).sum()), 1e-30)
    if unexplained > MAX_UNEXPLAINED:
        return False  # not a low-rank change: the other update types store such a change as well
    size = best_rank(base[held_out], target_bits[held_out], b, a, rows_total, name)[1]
    return _bits.worthwhile(size, target_bits)


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

    def encode(
        self, tensor: Tensor, base: Tensor | None, side_data: Mapping[str, Tensor] | None = None
    ) -> Update | None:
        found = _bits.operands(tensor, base)
        if found is None:
            return None
        target_bits, base_values = found
        name = tensor.dtype
        rows, cols = base_values.shape
        params: dict[str, Any] = {}
        with np.errstate(all="ignore"):
            target_values = _bits.to_values(target_bits, name)
            change = target_values - base_values
            if side_data and ("lora_a" in side_data or "lora_b" in side_data):
                b, a = given_factors(side_data, rows, cols)
                scale = fitted_scale(change, b, a)
                if scale != 1.0:
                    b, params["lora_scale"] = (b * np.float32(scale)).astype(np.float32), scale
                params["factors"] = "update-data"
            else:
                if not promising(base_values, target_bits, change, name):
                    return None
                b, a = top_factors(change, MAX_RANK)
                rank = choose_rank(base_values, target_bits, b, a, name)
                b, a = np.ascontiguousarray(b[:, :rank]), np.ascontiguousarray(a[:rank])
                params["factors"] = "svd"
            planes = _bits.residual(target_bits, reconstruct(base_values, b, a), name)
        if not _bits.worthwhile(a.nbytes + b.nbytes + _bits.estimated_size(planes, target_bits.itemsize), target_bits):
            return None
        params["rank"] = int(a.shape[0])
        arrays = {"a": Tensor.from_numpy(a), "b": Tensor.from_numpy(b), **_bits.residual_arrays(planes)}
        return Update(arrays=arrays, params=params)

    def decode(self, update: Update, base: Tensor | None, info: TensorInfo) -> Tensor:
        base_values = _bits.base_values(base, info, "a low-rank")
        rows, cols = base_values.shape
        a, b = _bits.arrays(update.arrays, ("a", "b"), "a low-rank")
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != cols or b.shape[0] != rows or a.shape[0] != b.shape[1]:
            raise ThetaError(
                f"low-rank factors {list(b.shape)} @ {list(a.shape)} do not fit {info.dtype} {list(info.shape)}"
            )
        with np.errstate(all="ignore"):
            return _bits.corrected(reconstruct(base_values, b, a), update.arrays, info)
