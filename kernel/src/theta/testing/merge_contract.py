"""`MergeStrategyContract`: the checks every merge strategy passes.

Subclass it in the plugin's tests and set:
- `strategy_name`: the registered name;
- `options`: raw options (as a policy's `options` table) for the general checks;
- `one_side`: for each side (`"base"`, `"ours"`, `"theirs"`) that some options give back,
  those options, e.g. `{"ours": {"weight": 0.0}, "theirs": {"weight": 1.0}}` ("weight 1 on
  one side gives that side"); `exact_one_side = False` when that holds within rounding only;
- `arithmetic = True` for a strategy that combines values: integer and boolean tensors, a
  removed side and mismatched dtypes or shapes must then give a conflict, and its result must
  differ from both sides;
- `always_conflicts = True` for a strategy that leaves every parameter to the user.

The checks call the strategy as the kernel does: options structured from `options`,
`choose` first (a side it names is that side's tensor), then `merge`. They fail for a
strategy that declines everything: each asserts that a tensor came back.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np
import pytest

from theta.bits import raw_bits, to_bits, to_values
from theta.merges import SIDES, Conflict, MergeStrategy, OptionError, structure_options
from theta.plugins import default_manager
from theta.tensors import Tensor

FLOAT_DTYPES = ("float32", "bfloat16", "float16", "float64")
EPSILON = {"float32": 2.0**-23, "bfloat16": 2.0**-7, "float16": 2.0**-10, "float64": 2.0**-52}
NAME = "layers.0.attn.weight"


def float_tensor(values: np.ndarray, dtype: str) -> Tensor:
    """`values` rounded to the float dtype `dtype` (bfloat16 included) as a Tensor."""
    work = np.float64 if dtype == "float64" else np.float32
    return Tensor.from_numpy(to_bits(np.asarray(values, dtype=work), dtype).reshape(values.shape), dtype_name=dtype)


def as_values(tensor: Tensor) -> np.ndarray:
    """A float tensor's values as float64, in its shape."""
    return to_values(raw_bits(tensor), tensor.dtype).astype(np.float64).reshape(tensor.shape)


def versions(dtype: str, shape: tuple[int, ...] = (8, 24), seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """A base and two different fine-tunes of it."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(shape)
    ours = base + 0.1 * rng.standard_normal(shape)
    theirs = base + 0.1 * rng.standard_normal(shape)
    return float_tensor(base, dtype), float_tensor(ours, dtype), float_tensor(theirs, dtype)


class MergeStrategyContract:
    strategy_name: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}
    one_side: ClassVar[dict[str, dict[str, Any]]] = {}
    exact_one_side: ClassVar[bool] = True
    arithmetic: ClassVar[bool] = True
    always_conflicts: ClassVar[bool] = False

    @pytest.fixture
    def strategy(self) -> MergeStrategy:
        return default_manager().registry.merge_strategy(self.strategy_name)

    def run(
        self,
        strategy: MergeStrategy,
        base: Tensor | None,
        ours: Tensor | None,
        theirs: Tensor | None,
        options: dict[str, Any] | None = None,
        name: str = NAME,
    ) -> Tensor | Conflict | None:
        """What the kernel gets for these versions: `choose`, then (unless it decided) `merge`."""
        raw = self.options if options is None else options
        structured = structure_options(strategy.options_type, dict(raw), "options", strategy.name)
        decided = strategy.choose(name, structured)
        if isinstance(decided, Conflict):
            return decided
        if decided is not None:
            assert decided in SIDES, f"choose() returned {decided!r}"
            return {"base": base, "ours": ours, "theirs": theirs}[decided]
        return strategy.merge(name, base, ours, theirs, structured)

    def merged(self, strategy: MergeStrategy, *tensors: Tensor | None, options: dict[str, Any] | None = None) -> Tensor:
        result = self.run(strategy, *tensors, options=options)
        assert isinstance(result, Tensor), f"{self.strategy_name} gave {result!r} instead of a tensor"
        return result

    # -- registration and options ------------------------------------------------------------

    def test_registered_with_an_options_class(self, strategy: MergeStrategy) -> None:
        assert strategy.name == self.strategy_name
        assert attrs.has(strategy.options_type)
        structure_options(strategy.options_type, dict(self.options), "options", strategy.name)

    def test_unknown_option_is_refused_by_name(self, strategy: MergeStrategy) -> None:
        with pytest.raises(OptionError, match="no_such_option"):
            structure_options(strategy.options_type, {"no_such_option": 1}, "options", strategy.name)

    # -- properties -------------------------------------------------------------------------

    @pytest.mark.parametrize("dtype", FLOAT_DTYPES)
    def test_a_model_merged_with_itself_gives_it_back(self, strategy: MergeStrategy, dtype: str) -> None:
        x = versions(dtype)[1]
        result = self.run(strategy, x, x, x)
        if self.always_conflicts:
            assert isinstance(result, Conflict) and result.reason
            return
        assert isinstance(result, Tensor), f"{self.strategy_name} gave {result!r}"
        assert result.dtype == dtype and result.shape == x.shape
        assert bytes(result.data) == bytes(x.data)

    @pytest.mark.parametrize("dtype", FLOAT_DTYPES)
    def test_weight_one_on_one_side_gives_that_side(self, strategy: MergeStrategy, dtype: str) -> None:
        if self.always_conflicts:
            pytest.skip("the strategy leaves every parameter to the user")
        assert self.one_side, "set one_side: options with which the strategy gives back one version"
        tensors = dict(zip(SIDES, versions(dtype), strict=True))
        for side, options in self.one_side.items():
            result = self.merged(strategy, *tensors.values(), options=options)
            expected = tensors[side]
            assert result.dtype == dtype and result.shape == expected.shape
            if self.exact_one_side:
                assert bytes(result.data) == bytes(expected.data), f"{options} does not give {side}"
            else:
                scale = np.maximum.reduce([np.abs(as_values(t)) for t in tensors.values()])
                error = np.abs(as_values(result) - as_values(expected))
                assert np.all(error <= 2 * EPSILON[dtype] * scale), f"{options} does not give {side}"

    @pytest.mark.parametrize("dtype", FLOAT_DTYPES)
    def test_deterministic_and_dtype_preserved(self, strategy: MergeStrategy, dtype: str) -> None:
        if self.always_conflicts:
            pytest.skip("the strategy leaves every parameter to the user")
        base, ours, theirs = versions(dtype)
        first = self.merged(strategy, base, ours, theirs)
        second = self.merged(strategy, *versions(dtype))
        assert first.dtype == dtype and first.shape == ours.shape
        assert bytes(first.data) == bytes(second.data)

    def test_never_vacuous(self, strategy: MergeStrategy) -> None:
        base, ours, theirs = versions("float32")
        result = self.run(strategy, base, ours, theirs)
        if self.always_conflicts:
            assert isinstance(result, Conflict) and result.reason
            return
        assert isinstance(result, Tensor), f"{self.strategy_name} declined a plain float32 merge: {result!r}"
        if self.arithmetic:
            assert bytes(result.data) not in (bytes(ours.data), bytes(theirs.data)), "the result is one side"
            assert np.all(np.isfinite(as_values(result)))

    # -- what an arithmetic strategy must refuse ---------------------------------------------

    @pytest.mark.parametrize("dtype", ["int32", "int8", "uint8", "bool"])
    def test_integer_and_boolean_tensors_conflict(self, strategy: MergeStrategy, dtype: str) -> None:
        if not self.arithmetic:
            pytest.skip("the strategy does not combine values")
        rng = np.random.default_rng(1)
        base, ours, theirs = (Tensor.from_numpy(rng.integers(0, 2, (4, 6)).astype(np.dtype(dtype))) for _ in range(3))
        result = self.run(strategy, base, ours, theirs)
        assert isinstance(result, Conflict) and dtype in result.reason

    def test_mismatched_shapes_and_dtypes_conflict(self, strategy: MergeStrategy) -> None:
        if not self.arithmetic:
            pytest.skip("the strategy does not combine values")
        base, ours, _ = versions("float32", (4, 6))
        wider = versions("float32", (4, 7))[2]
        half = versions("float16", (4, 6))[2]
        for theirs in (wider, half):
            result = self.run(strategy, base, ours, theirs)
            assert isinstance(result, Conflict) and result.reason

    def test_a_removed_side_conflicts(self, strategy: MergeStrategy) -> None:
        if not self.arithmetic:
            pytest.skip("the strategy does not combine values")
        base, ours, theirs = versions("float32")
        for args in ((base, None, theirs), (base, ours, None)):
            result = self.run(strategy, *args)
            assert isinstance(result, Conflict) and "removed" in result.reason
