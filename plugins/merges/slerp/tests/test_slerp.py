"""The contract, and `slerp` against its definition computed here with NumPy (float32, bfloat16)."""

import ml_dtypes
import numpy as np
import pytest

from theta.merges import Conflict
from theta.tensors import Tensor
from theta.testing.merge_contract import MergeStrategyContract
from theta_merge_slerp import Slerp, SlerpOptions


class TestSlerpContract(MergeStrategyContract):
    strategy_name = "slerp"
    options = {"t": 0.3}
    one_side = {"ours": {"t": 0.0}, "theirs": {"t": 1.0}}


class TestWholeTensorSlerpContract(TestSlerpContract):
    options = {"t": 0.6, "rows": False}
    one_side = {"ours": {"t": 0.0, "rows": False}, "theirs": {"t": 1.0, "rows": False}}


def slerp_vectors(t: float, v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """Spherical interpolation of two float32 vectors, as the definition says."""
    n0, n1 = np.linalg.norm(v0), np.linalg.norm(v1)
    u0 = v0 / n0 if n0 > 1e-8 else v0
    u1 = v1 / n1 if n1 > 1e-8 else v1
    cos = np.clip(np.sum(u0 * u1), -1.0, 1.0)
    if abs(cos) > 0.9995:
        return np.float32(1 - t) * v0 + np.float32(t) * v1
    theta0 = np.arccos(cos)
    return np.sin(theta0 * (1 - t)) / np.sin(theta0) * v0 + np.sin(theta0 * t) / np.sin(theta0) * v1


def reference(t: float, o: np.ndarray, th: np.ndarray, rows: bool = True) -> np.ndarray:
    if not rows or o.ndim == 0:
        return slerp_vectors(t, o.reshape(-1), th.reshape(-1)).reshape(o.shape)
    flat0, flat1 = o.reshape(o.shape[0], -1), th.reshape(o.shape[0], -1)
    return np.stack([slerp_vectors(t, a, b) for a, b in zip(flat0, flat1, strict=True)]).reshape(o.shape)


def tensors(dtype: str, arrays: list[np.ndarray]) -> tuple[list[Tensor], list[np.ndarray]]:
    if dtype == "bfloat16":
        rounded = [a.astype(ml_dtypes.bfloat16) for a in arrays]
        return [Tensor.from_numpy(r.view(np.uint16), dtype_name="bfloat16") for r in rounded], [
            r.astype(np.float32) for r in rounded
        ]
    return [Tensor.from_numpy(a.astype(np.float32)) for a in arrays], [a.astype(np.float32) for a in arrays]


def close(merged: Tensor, expected: np.ndarray, dtype: str) -> bool:
    got = merged.numpy().view(ml_dtypes.bfloat16) if dtype == "bfloat16" else merged.numpy()
    got, want = got.astype(np.float64), expected.astype(np.float64)
    if dtype == "bfloat16":  # one bfloat16 step
        step = np.spacing(np.abs(expected.astype(ml_dtypes.bfloat16).astype(np.float32))) * 2**16
    else:
        step = 4 * np.spacing(np.abs(expected).astype(np.float32)) + 1e-7
    return bool(np.all(np.abs(got - want) <= step))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("rows", [True, False])
def test_slerp_interpolates_each_row_on_the_sphere(dtype: str, t: float, rows: bool) -> None:
    rng = np.random.default_rng(2)
    ours = rng.standard_normal((12, 5, 7))
    theirs = 0.6 * ours + rng.standard_normal((12, 5, 7))  # far from colinear
    theirs[3] = 2.0 * ours[3]  # one colinear row: interpolated linearly
    theirs[4] = 0.0  # a zero row is not normalised
    (o_t, t_t), (o, th) = tensors(dtype, [ours, theirs])
    merged = Slerp().merge("w", None, o_t, t_t, SlerpOptions(t=t, rows=rows))
    assert isinstance(merged, Tensor) and merged.dtype == dtype and merged.shape == (12, 5, 7)
    assert close(merged, reference(t, o, th, rows), dtype)


def test_a_one_dimensional_tensor_is_interpolated_linearly() -> None:
    rng = np.random.default_rng(4)
    (o_t, t_t), (o, th) = tensors("float32", [rng.standard_normal(300), rng.standard_normal(300)])
    merged = Slerp().merge("bias", None, o_t, t_t, SlerpOptions(t=0.25))
    assert bytes(merged.data) == (np.float32(0.75) * o + np.float32(0.25) * th).tobytes()


def test_rows_longer_than_a_span_are_streamed() -> None:
    rng = np.random.default_rng(5)
    ours = rng.standard_normal((2, 700_000)).astype(np.float32)
    theirs = rng.standard_normal((2, 700_000)).astype(np.float32)
    merged = Slerp().merge("embed", None, Tensor.from_numpy(ours), Tensor.from_numpy(theirs), SlerpOptions(t=0.4))
    # the reference sums 700,000 products in float32; the strategy sums in float64
    expected = reference(0.4, ours.astype(np.float64), theirs.astype(np.float64))
    assert np.allclose(merged.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_integer_tensors_conflict_and_the_base_is_not_needed() -> None:
    ints = Tensor.from_numpy(np.arange(4, dtype=np.int32))
    assert isinstance(Slerp().merge("w", None, ints, ints, SlerpOptions()), Conflict)
