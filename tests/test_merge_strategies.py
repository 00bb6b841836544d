"""Every strategy through a real `git merge`, against its definition computed here with NumPy in
float32 and bfloat16; and the two properties that catch real merge bugs, for any tensor."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from merge_support import (
    MODEL,
    REFERENCES,
    as_bf16,
    branches,
    dare,
    load,
    load_bf16,
    make_model,
    merge,
    save,
    save_bf16,
    stored,
    tuned,
    write_policy,
)

from theta.bits import to_bits
from theta.merges import Conflict, structure_options
from theta.plugins import default_manager
from theta.tensors import Tensor
from theta.testing import GitRepo

NAMES = ["embed.weight", "layers.0.attn.weight", "layers.1.norm.weight"]
CASES = [
    ("average", "{ weight = 0.3 }", {"weight": 0.3}),
    ("task-arithmetic", "{ scale = 0.8, weights = [1.0, 0.5] }", {"scale": 0.8, "weights": (1.0, 0.5)}),
    ("ties", "{ density = 0.2, scale = 1.0 }", {"density": 0.2}),
    ("dare", "{ density = 0.5, seed = 3 }", {"density": 0.5, "seed": 3}),
    ("slerp", "{ t = 0.4 }", {"t_": 0.4}),
]


def expected(strategy: str, name: str, b: np.ndarray, o: np.ndarray, t: np.ndarray, options: dict) -> np.ndarray:  # type: ignore[type-arg]
    if strategy == "dare":
        return dare(name, b, o, t, **options)
    return REFERENCES[strategy](b, o, t, **options)


def close(got: np.ndarray, want: np.ndarray, bf16: bool) -> bool:
    """Within float32 rounding: dare and slerp sum in float64, the references here in float32."""
    if bf16:
        want = as_bf16(want)
        return bool(np.all(np.abs(got - want) <= np.spacing(np.abs(want)) * 2**16))  # one bfloat16 step
    return bool(np.allclose(got, want, rtol=2e-6, atol=2e-6))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(("strategy", "toml", "options"), CASES, ids=[c[0] for c in CASES])
def test_each_strategy_through_git_equals_its_definition(repo: GitRepo, strategy, toml, options, dtype) -> None:  # type: ignore[no-untyped-def]
    bf16 = dtype == "bfloat16"
    base = make_model()
    ours, theirs = tuned(base, NAMES, seed=1), tuned(base, NAMES, seed=2)
    write = save_bf16 if bf16 else save
    branches(repo, write(base), write(ours), write(theirs))
    write_policy(repo, f'version = 1\ndefault = {{ strategy = "{strategy}", options = {toml} }}\n')
    result = merge(repo)
    assert result.returncode == 0, result.stderr
    merged = load_bf16(repo.read(MODEL)) if bf16 else load(repo.read(MODEL))
    for name in NAMES:
        b, o, t = (as_bf16(m[name]) if bf16 else m[name] for m in (base, ours, theirs))
        want = expected(strategy, name, b, o, t, options)
        if strategy in ("dare", "slerp"):
            assert close(merged[name], want, bf16), name
        else:
            want = as_bf16(want) if bf16 else want
            assert merged[name].tobytes() == want.astype(np.float32).tobytes(), name
        assert stored(repo)["parameters"][name]["merge"]["strategy"] == strategy
    assert repo.status() == ""


# ---- properties, for any float tensor ------------------------------------------------------

REGISTRY = default_manager().registry
# options with which each strategy gives back one side: (strategy, options, side, exactly)
ONE_SIDE = [
    ("average", {"weight": 0.0}, "ours", True),
    ("average", {"weight": 1.0}, "theirs", True),
    ("slerp", {"t": 0.0}, "ours", True),
    ("slerp", {"t": 1.0}, "theirs", True),
    ("task-arithmetic", {"weights": [1, 0]}, "ours", False),
    ("task-arithmetic", {"weights": [0, 1]}, "theirs", False),
    ("ties", {"weights": [1, 0], "density": 1.0}, "ours", False),
    ("ties", {"weights": [0, 1]}, "theirs", False),
    ("dare", {"weights": [1, 0]}, "ours", False),
    ("dare", {"weights": [0, 1], "density": 1.0}, "theirs", False),
    ("ours", {}, "ours", True),
    ("theirs", {}, "theirs", True),
    ("base", {}, "base", True),
]
ARITHMETIC = ["average", "task-arithmetic", "ties", "dare", "slerp"]
DEFAULTS = {"ties": {"density": 0.4}, "dare": {"density": 0.6, "seed": 9}}

shapes = st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple)
dtypes = st.sampled_from(["float32", "bfloat16", "float16", "float64"])


def tensor(values: np.ndarray, dtype: str) -> Tensor:
    work = np.float64 if dtype == "float64" else np.float32
    return Tensor.from_numpy(to_bits(values.astype(work), dtype).reshape(values.shape), dtype_name=dtype)


def numbers(t: Tensor) -> np.ndarray:
    if t.dtype == "bfloat16":
        return t.numpy().view(ml_dtypes.bfloat16).astype(np.float64)
    return t.numpy().astype(np.float64)


def run(strategy: str, options: dict, base: Tensor, ours: Tensor, theirs: Tensor):  # type: ignore[no-untyped-def, type-arg]
    found = REGISTRY.merge_strategy(strategy)
    structured = structure_options(found.options_type, options, "options", strategy)
    side = found.choose("p", structured)
    if side is not None and not isinstance(side, Conflict):
        return {"base": base, "ours": ours, "theirs": theirs}[side]
    return found.merge("p", base, ours, theirs, structured)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, dtype=dtypes, seed=st.integers(0, 2**32 - 1), strategy=st.sampled_from(ARITHMETIC))
def test_a_model_merged_with_itself_gives_it_back(shape, dtype, seed, strategy) -> None:  # type: ignore[no-untyped-def]
    x = tensor(np.random.default_rng(seed).standard_normal(shape) * 3, dtype)
    result = run(strategy, DEFAULTS.get(strategy, {}), x, x, x)
    assert isinstance(result, Tensor) and result.dtype == dtype and result.shape == x.shape
    assert bytes(result.data) == bytes(x.data)


@settings(max_examples=80, deadline=None)
@given(shape=shapes, dtype=dtypes, seed=st.integers(0, 2**32 - 1), case=st.sampled_from(ONE_SIDE))
def test_weight_one_on_one_side_gives_that_side(shape, dtype, seed, case) -> None:  # type: ignore[no-untyped-def]
    strategy, options, side, exactly = case
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(shape)
    versions = {"base": tensor(b, dtype), "ours": tensor(b + rng.normal(0, 0.3, shape), dtype)}
    versions["theirs"] = tensor(b + rng.normal(0, 0.3, shape), dtype)
    result = run(strategy, options, versions["base"], versions["ours"], versions["theirs"])
    wanted = versions[side]
    assert isinstance(result, Tensor) and result.dtype == dtype and result.shape == wanted.shape
    if exactly:
        assert bytes(result.data) == bytes(wanted.data)
    else:  # base + (side - base): that side within one rounding of the larger magnitude
        eps = {"float32": 2.0**-23, "bfloat16": 2.0**-8, "float16": 2.0**-11, "float64": 2.0**-52}[dtype]
        scale = np.maximum(np.abs(numbers(versions["base"])), np.abs(numbers(wanted)))
        assert np.all(np.abs(numbers(result) - numbers(wanted)) <= 2 * eps * scale)
