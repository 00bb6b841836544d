"""The contract, and each strategy against its definition computed here with NumPy (float32, bfloat16)."""

import ml_dtypes
import numpy as np
import pytest

from theta.merges import Conflict, OptionError, structure_options
from theta.tensors import Tensor
from theta.testing.merge_contract import MergeStrategyContract
from theta_merge_linear import Average, AverageOptions, TaskArithmetic, TaskArithmeticOptions


class TestAverageContract(MergeStrategyContract):
    strategy_name = "average"
    options = {"weight": 0.3}
    one_side = {"ours": {"weight": 0.0}, "theirs": {"weight": 1.0}}


class TestTaskArithmeticContract(MergeStrategyContract):
    strategy_name = "task-arithmetic"
    options = {"scale": 0.8, "weights": [1.0, 0.5]}
    one_side = {"ours": {"weights": [1, 0]}, "theirs": {"weights": [0, 1]}, "base": {"weights": [0, 0]}}
    exact_one_side = False  # base + (ours - base) is ours within float32 rounding


def sample(dtype: str, shape: tuple[int, ...] = (33, 70), seed: int = 3) -> tuple[list[Tensor], list[np.ndarray]]:
    """Three versions as tensors of `dtype`, and their values as float32 arrays."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(shape).astype(np.float32)
    arrays = [
        base,
        base + rng.normal(0, 0.05, shape).astype(np.float32),
        base + rng.normal(0, 0.05, shape).astype(np.float32),
    ]
    if dtype == "bfloat16":
        rounded = [a.astype(ml_dtypes.bfloat16) for a in arrays]
        tensors = [Tensor.from_numpy(r.view(np.uint16), dtype_name="bfloat16") for r in rounded]
        return tensors, [r.astype(np.float32) for r in rounded]
    return [Tensor.from_numpy(a) for a in arrays], arrays


def bits_of(values: np.ndarray, dtype: str) -> bytes:
    if dtype == "bfloat16":
        return values.astype(ml_dtypes.bfloat16).tobytes()
    return values.astype(np.float32).tobytes()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("weight", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_average_is_the_weighted_mean(dtype: str, weight: float) -> None:
    (base, ours, theirs), (_, o, t) = sample(dtype)
    merged = Average().merge("w", base, ours, theirs, AverageOptions(weight=weight))
    expected = np.float32(1 - weight) * o + np.float32(weight) * t
    assert isinstance(merged, Tensor) and merged.dtype == dtype
    assert bytes(merged.data) == bits_of(expected, dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(("scale", "weights"), [(1.0, (1.0, 1.0)), (0.5, (1.0, 0.3)), (2.0, (-0.5, 1.0))])
def test_task_arithmetic_adds_the_weighted_changes(dtype: str, scale: float, weights: tuple[float, float]) -> None:
    (base, ours, theirs), (b, o, t) = sample(dtype)
    options = TaskArithmeticOptions(scale=scale, weights=weights)
    merged = TaskArithmetic().merge("w", base, ours, theirs, options)
    mixed = np.float32(weights[0]) * (o - b) + np.float32(weights[1]) * (t - b)
    expected = b + np.float32(scale) * mixed
    assert isinstance(merged, Tensor)
    assert bytes(merged.data) == bits_of(expected, dtype)


def test_float64_is_computed_in_float64() -> None:
    rng = np.random.default_rng(0)
    o, t = (rng.standard_normal(50) for _ in range(2))
    merged = Average().merge("w", None, Tensor.from_numpy(o), Tensor.from_numpy(t), AverageOptions(weight=0.3))
    assert isinstance(merged, Tensor) and merged.dtype == "float64"
    assert np.array_equal(merged.numpy(), 0.7 * o + 0.3 * t)


def test_task_arithmetic_needs_a_base() -> None:
    (_, ours, theirs), _ = sample("float32")
    result = TaskArithmetic().merge("w", None, ours, theirs, TaskArithmeticOptions())
    assert isinstance(result, Conflict) and "merge base" in result.reason


def test_weight_outside_zero_one_is_refused() -> None:
    with pytest.raises(OptionError, match=r"rules\[0\]\.options\.weight: must be in \[0, 1\], got 1.5"):
        structure_options(AverageOptions, {"weight": 1.5}, "rules[0].options", "average")
    with pytest.raises(OptionError, match=r"options\.weights: expected a list of 2 values, got 3"):
        structure_options(TaskArithmeticOptions, {"weights": [1, 2, 3]}, "options", "task-arithmetic")
    with pytest.raises(OptionError, match=r"options\.scale: expected a number, got 'big'"):
        structure_options(TaskArithmeticOptions, {"scale": "big"}, "options", "task-arithmetic")
