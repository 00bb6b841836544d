"""docs/merging.md's example strategy is real code: it runs, registers, and passes the contract."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pytest

from theta.merges import Conflict, MergeStrategy
from theta.plugins import PluginManager
from theta.tensors import Tensor
from theta.testing import MergeStrategyContract

DOC = Path(__file__).resolve().parents[1] / "docs" / "merging.md"


def example_plugin() -> types.ModuleType:
    text = DOC.read_text()
    code = re.search(r"## Writing a strategy.*?```python\n(.*?)```", text, re.S)
    assert code, "docs/merging.md has no example strategy"
    module = types.ModuleType("merging_example")
    exec(compile(code.group(1), str(DOC), "exec"), module.__dict__)
    return module


class TestTheDocumentedExample(MergeStrategyContract):
    strategy_name = "nudge"
    options = {"amount": 0.25}
    one_side = {"ours": {"amount": 0.0}}

    @pytest.fixture
    def strategy(self) -> MergeStrategy:
        manager = PluginManager()
        manager.register(example_plugin(), name="merging-example")
        return manager.registry.merge_strategy("nudge")


def test_the_example_computes_what_it_says() -> None:
    manager = PluginManager()
    manager.register(example_plugin(), name="merging-example")
    nudge = manager.registry.merge_strategy("nudge")
    ours, theirs = np.zeros(4, np.float32), np.full(4, 2.0, np.float32)
    merged = nudge.merge("w", None, Tensor.from_numpy(ours), Tensor.from_numpy(theirs), nudge.options_type(amount=0.25))
    assert isinstance(merged, Tensor) and np.array_equal(merged.numpy(), np.full(4, 0.5, np.float32))
    ints = Tensor.from_numpy(np.arange(4))
    assert isinstance(nudge.merge("w", None, ints, ints, nudge.options_type()), Conflict)
