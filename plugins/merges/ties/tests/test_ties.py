"""The contract, and `ties` and `dare` against their definitions computed here with NumPy."""

import hashlib

import ml_dtypes
import numpy as np
import pytest

from theta.tensors import Tensor
from theta.testing.merge_contract import MergeStrategyContract
from theta_merge_ties import Dare, DareOptions, Ties, TiesOptions
from theta_merge_ties import select as selection
from theta_merge_ties.combine import _elected_mean, _weighted, select
from theta_merge_ties.select import SAMPLE_KEYS, kth_largest, magnitude_keys, rank_counts


class TestTiesContract(MergeStrategyContract):
    strategy_name = "ties"
    options = {"density": 0.3, "weights": [1.0, 0.7]}
    one_side = {"ours": {"weights": [1, 0]}, "theirs": {"weights": [0, 1]}}
    exact_one_side = False  # base + (ours - base) is ours within float32 rounding


class TestDareContract(MergeStrategyContract):
    strategy_name = "dare"
    options = {"density": 0.5, "seed": 7}
    one_side = {"ours": {"weights": [1, 0]}, "theirs": {"weights": [0, 1]}}
    exact_one_side = False


class TestDareTiesContract(TestDareContract):
    options = {"density": 0.5, "sign_election": True, "weights": [0.6, 1.0]}


def sample(dtype: str, shape: tuple[int, ...] = (40, 64), seed: int = 5, levels: int = 0):
    """Three versions as tensors of `dtype` and as float32 values; `levels` > 0 makes equal magnitudes."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(shape).astype(np.float32)
    changes = [rng.normal(0, 0.05, shape).astype(np.float32) for _ in range(2)]
    if levels:
        changes = [np.round(c * levels).astype(np.float32) / np.float32(levels * 8) for c in changes]
    arrays = [base, base + changes[0], base + changes[1]]
    if dtype == "bfloat16":
        rounded = [a.astype(ml_dtypes.bfloat16) for a in arrays]
        return [Tensor.from_numpy(r.view(np.uint16), dtype_name="bfloat16") for r in rounded], [
            r.astype(np.float32) for r in rounded
        ]
    return [Tensor.from_numpy(a) for a in arrays], arrays


def as_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    return values.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float32).astype(np.float64)


def trimmed(delta: np.ndarray, density: float) -> np.ndarray:
    if density >= 1:
        return delta
    k = max(1, int(density * delta.size))
    order = np.argsort(-np.abs(delta).reshape(-1), kind="stable")  # ties: lowest index first
    mask = np.zeros(delta.size, dtype=bool)
    mask[order[:k]] = True
    return np.where(mask.reshape(delta.shape), delta, np.float32(0))


def combined(b, deltas, weights, scale, elect):
    w = [np.float32(x) for x in weights]
    weighted = [wi * d for wi, d in zip(w, deltas, strict=True)]
    if elect:
        elected = np.where(weighted[0] + weighted[1] >= 0, np.float32(1), np.float32(-1))
        kept = [(np.sign(x) == elected).astype(np.float32) for x in weighted]
        divisor = w[0] * kept[0] + w[1] * kept[1]
        divisor[divisor == 0] = 1
        mixed = (weighted[0] * kept[0] + weighted[1] * kept[1]) / divisor
    else:
        mixed = weighted[0] + weighted[1]
    return b + np.float32(scale) * mixed


def ties_reference(b, o, t, density, scale, weights):
    return combined(b, [trimmed(o - b, density), trimmed(t - b, density)], weights, scale, elect=True)


def dare_reference(name, b, o, t, density, rescale, seed, elect, scale, weights):
    deltas = []
    for side, x in enumerate((o, t)):
        d = x - b
        if density < 1:
            words = np.frombuffer(hashlib.sha256(name.encode()).digest(), dtype=">u4").tolist()
            draws = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *words, side]))).random(d.size)
            kept = np.where(draws.reshape(d.shape) < density, d, np.float32(0))
            before, after = np.abs(d).sum(dtype=np.float64), np.abs(kept).sum(dtype=np.float64)
            if rescale and before >= 1e-7 and after >= 1e-7:
                kept = kept * np.float32(before / after)
            d = kept
        deltas.append(d)
    return combined(b, deltas, weights, scale, elect)


def assert_within_one_step(merged: Tensor, expected: np.ndarray, dtype: str) -> None:
    """Equal to the reference rounded to `dtype`, or one representable step away (float64 sums)."""
    got = as_dtype(merged.numpy().view(ml_dtypes.bfloat16) if dtype == "bfloat16" else merged.numpy(), dtype)
    want = as_dtype(expected, dtype)
    step = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64) * (2**16 if dtype == "bfloat16" else 1)
    assert np.all(np.abs(got - want) <= step), np.max(np.abs(got - want) / step)
    assert np.mean(got == want) > 0.99


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(
    ("density", "scale", "weights"), [(1.0, 1.0, (1, 1)), (0.2, 1.0, (1, 1)), (0.5, 0.7, (1.0, 0.4))]
)
def test_ties_is_trim_elect_and_disjoint_mean(dtype, density, scale, weights) -> None:
    (base, ours, theirs), (b, o, t) = sample(dtype)
    merged = Ties().merge("w", base, ours, theirs, TiesOptions(density=density, scale=scale, weights=weights))
    assert isinstance(merged, Tensor) and merged.dtype == dtype
    expected = ties_reference(b, o, t, density, scale, weights)
    assert bytes(merged.data) == expected.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float32).tobytes()


@pytest.mark.parametrize("density", [0.05, 0.3, 0.77])
def test_ties_trims_exactly_k_elements_when_magnitudes_tie(density) -> None:
    (base, ours, theirs), (b, o, t) = sample("float32", levels=3)
    merged = Ties().merge("w", base, ours, theirs, TiesOptions(density=density))
    assert bytes(merged.data) == ties_reference(b, o, t, density, 1.0, (1, 1)).tobytes()


def test_ties_across_spans_and_in_float64() -> None:
    rng = np.random.default_rng(0)
    shape = (1100, 1000)  # more elements than one span
    b = rng.standard_normal(shape)
    o, t = b + rng.normal(0, 0.1, shape), b + rng.normal(0, 0.1, shape)
    merged = Ties().merge("w", *(Tensor.from_numpy(x) for x in (b, o, t)), TiesOptions(density=0.2))
    deltas = [trimmed(o - b, 0.2), trimmed(t - b, 0.2)]
    elected = np.where(deltas[0] + deltas[1] >= 0, 1.0, -1.0)
    kept = [np.sign(d) == elected for d in deltas]
    expected = b + (deltas[0] * kept[0] + deltas[1] * kept[1]) / np.maximum(kept[0] * 1.0 + kept[1], 1)
    assert merged.dtype == "float64" and np.array_equal(merged.numpy(), expected)


def test_kth_largest_counts_ties() -> None:
    values = np.array([0.5, -2.0, 2.0, 1.0, -0.0, 2.0, np.inf, -1.0], dtype=np.float32)
    keys = magnitude_keys(values)
    expected = {1: (np.inf, 1, 1), 2: (2.0, 1, 3), 4: (2.0, 3, 3), 5: (1.0, 1, 2), 8: (0.0, 1, 1)}
    for k, (magnitude, take, equal) in expected.items():
        found = kth_largest(lambda span, out: np.copyto(out, keys[span]), np.empty(len(values), np.uint32), k)
        assert found == (magnitude_keys(np.array([magnitude], np.float32))[0], take, equal), k


def _large_keys(kind: str, numel: int = 5 * SAMPLE_KEYS + 7, dtype: type = np.float32) -> np.ndarray:
    rng = np.random.default_rng(3)
    if kind == "normal":
        values = rng.standard_normal(numel)
    elif kind == "few values":  # long runs of equal keys around any rank
        values = rng.integers(-3, 4, numel)
    elif kind == "sorted":
        values = np.linspace(0, 1, numel)
    else:  # mostly unchanged: zeros, and a few large changes
        values = np.where(rng.random(numel) < 0.01, rng.standard_normal(numel), 0)
    return magnitude_keys(values.astype(dtype))


def _expected(keys: np.ndarray, at: int) -> tuple[int, int, int]:
    threshold = np.sort(keys)[at]
    return int(threshold), int(np.count_nonzero(keys > threshold)), int(np.count_nonzero(keys == threshold))


@pytest.mark.parametrize("kind", ["normal", "few values", "sorted", "sparse"])
@pytest.mark.parametrize("share", [0.0, 0.2, 0.5, 0.8, 0.999, 1.0])
def test_rank_counts_are_those_of_the_sorted_keys(kind: str, share: float, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = _large_keys(kind)
    at = min(keys.size - 1, int(share * keys.size))
    expected = _expected(keys, at)
    assert rank_counts(keys.copy(), at) == expected
    monkeypatch.setattr(selection, "_MARGIN_SIGMAS", -1e9)  # bounds that miss: the whole array is partitioned
    assert rank_counts(keys.copy(), at) == expected


@pytest.mark.parametrize("share", [0.0, 0.2, 0.8, 1.0])
@pytest.mark.parametrize(
    ("numel", "dtype"),
    [(4 * SAMPLE_KEYS + 1, np.float32), (6 * SAMPLE_KEYS, np.float32), (6 * SAMPLE_KEYS, np.float64)],
)
def test_distinct_keys_are_selected_among_the_few_near_the_rank(share: float, numel: int, dtype: type) -> None:
    keys = _large_keys("normal", numel, dtype)
    at = min(keys.size - 1, int(share * keys.size))
    near = selection._near(keys.copy(), at)
    assert near is not None, "the sampled bounds should hold the rank, also at either end"
    assert near[0].size <= keys.size // selection.MOST_GATHERED
    assert rank_counts(keys.copy(), at) == _expected(keys, at)


@pytest.mark.parametrize("kind", ["few values", "sparse"])
def test_long_runs_of_equal_keys_are_not_gathered(kind: str) -> None:
    """Unchanged elements give long runs of zero keys: gathering them would copy most of the array."""
    keys = _large_keys(kind)
    at = int(0.8 * keys.size)
    assert selection._near(keys.copy(), at) is None
    assert rank_counts(keys.copy(), at) == _expected(keys, at)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(
    ("density", "rescale", "elect", "weights"),
    [(0.5, True, False, (1, 1)), (0.3, False, False, (1, 0.5)), (0.4, True, True, (0.8, 1))],
)
def test_dare_drops_rescales_and_combines(dtype, density, rescale, elect, weights) -> None:
    (base, ours, theirs), (b, o, t) = sample(dtype)
    options = DareOptions(density=density, rescale=rescale, sign_election=elect, seed=11, weights=weights)
    merged = Dare().merge("layers.3.mlp.weight", base, ours, theirs, options)
    assert isinstance(merged, Tensor) and merged.dtype == dtype
    expected = dare_reference("layers.3.mlp.weight", b, o, t, density, rescale, 11, elect, 1.0, weights)
    assert_within_one_step(merged, expected, dtype)


def test_dare_is_reproducible_and_seeded_by_name_and_seed() -> None:
    (base, ours, theirs), _ = sample("float32")
    runs = {
        (name, seed): bytes(Dare().merge(name, base, ours, theirs, DareOptions(density=0.3, seed=seed)).data)
        for name, seed in [("a.weight", 0), ("a.weight", 0), ("b.weight", 0), ("a.weight", 1)]
    }
    assert len(runs) == 3  # the repeated run gave the same bits
    again = bytes(Dare().merge("a.weight", base, ours, theirs, DareOptions(density=0.3)).data)
    assert again == runs[("a.weight", 0)]


def test_dare_keeps_about_density_of_each_change() -> None:
    (base, ours, _), (b, _, _) = sample("float32", shape=(200, 200))
    merged = Dare().merge("w", base, ours, base, DareOptions(density=0.25, rescale=False))
    changed = np.mean(merged.numpy() != b)
    assert 0.22 < changed < 0.28


def test_the_unit_weight_shortcut_gives_the_general_formulas_numbers() -> None:
    special = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 1e-45, -3e38, np.inf, -np.inf, np.nan], dtype=np.float32)
    rng = np.random.default_rng(3)
    pairs = np.array(np.meshgrid(special, special)).reshape(2, -1)
    noise = rng.standard_normal((2, 4096)).astype(np.float32) * (rng.random((2, 4096)) < 0.5)
    ours, theirs = np.concatenate([pairs, noise], axis=1)
    one = np.float32(1)
    with np.errstate(all="ignore"):
        fast = _elected_mean(ours.copy(), theirs.copy())
        general = _weighted((ours.copy(), theirs.copy()), (one, one), elect_sign=True)
    assert np.array_equal(np.isnan(fast), np.isnan(general))
    both = ~np.isnan(fast)
    assert np.array_equal(fast[both], general[both])  # zeros of either sign keep the base's bits alike


def test_select_chooses_bits_as_where_does() -> None:
    rng = np.random.default_rng(4)
    for kind in (np.float32, np.float64):
        a, b = rng.standard_normal((2, 1000)).astype(kind)
        a[:3] = [np.nan, -0.0, np.inf]
        mask = rng.random(1000) < 0.5
        assert select(mask, a, b).tobytes() == np.where(mask, a, b).tobytes()
