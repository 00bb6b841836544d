import numpy as np

from theta.merges import Conflict, NoOptions
from theta.tensors import Tensor
from theta.testing.merge_contract import MergeStrategyContract
from theta_merge_basic import Base, Fail, Ours, Theirs


class TestOursContract(MergeStrategyContract):
    strategy_name = "ours"
    one_side = {"ours": {}}
    arithmetic = False


class TestTheirsContract(MergeStrategyContract):
    strategy_name = "theirs"
    one_side = {"theirs": {}}
    arithmetic = False


class TestBaseContract(MergeStrategyContract):
    strategy_name = "base"
    one_side = {"base": {}}
    arithmetic = False


class TestFailContract(MergeStrategyContract):
    strategy_name = "fail"
    arithmetic = False
    always_conflicts = True


def test_sides_are_chosen_without_tensors() -> None:
    assert [s.choose("w", NoOptions()) for s in (Ours(), Theirs(), Base())] == ["ours", "theirs", "base"]
    assert isinstance(Fail().choose("w", NoOptions()), Conflict)


def test_any_dtype_and_shape_is_taken_as_it_is() -> None:
    ours = Tensor.from_numpy(np.arange(6, dtype=np.int64).reshape(2, 3))
    theirs = Tensor.from_numpy(np.array([True, False]))
    assert Ours().merge("w", None, ours, theirs, NoOptions()) is ours
    assert Theirs().merge("w", None, ours, theirs, NoOptions()) is theirs
    assert Base().merge("w", None, ours, theirs, NoOptions()) is None  # the base lacks it: left out
