"""`average` (mergekit's `linear`) and `task-arithmetic` (mergekit's `task_arithmetic`).

Both compute in float32 (float64 for float64 tensors), span by span, and round back to the
parameter's dtype (nearest even). Elements where the inputs agree keep their bits exactly:
an average of equal values is that value, and a base element that no side changed stays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
from attrs import field, frozen

import theta
from theta.merges import (
    Conflict,
    MergeStrategy,
    Output,
    arithmetic_conflict,
    between,
    each,
    finite,
    spans,
    values,
    work_dtype,
)
from theta.tensors import Tensor


@frozen(kw_only=True)
class AverageOptions:
    weight: float = field(default=0.5, validator=between(0.0, 1.0))
    """The share of theirs: 0 gives ours, 1 gives theirs."""


@frozen(kw_only=True)
class TaskArithmeticOptions:
    scale: float = field(default=1.0, validator=finite())
    """mergekit's `lambda`: how much of the combined change is added to the base."""
    weights: tuple[float, float] = field(default=(1.0, 1.0), validator=each(finite()))
    """The weights of our change and of theirs."""


@frozen
class Average(MergeStrategy):
    """`(1 - weight) * ours + weight * theirs`; the merge base is not used."""

    name: ClassVar[str] = "average"
    options_type: ClassVar[type] = AverageOptions

    def merge(
        self, name: str, base: Tensor | None, ours: Tensor | None, theirs: Tensor | None, options: AverageOptions
    ) -> Tensor | Conflict:
        conflict = arithmetic_conflict(base, ours, theirs, needs_base=False)
        if conflict is not None:
            return conflict
        assert ours is not None and theirs is not None
        kind = work_dtype(ours.dtype)
        keep, take = kind(1.0 - options.weight), kind(options.weight)
        out = Output.like(ours)
        with np.errstate(all="ignore"):
            for span in spans(ours.numel):
                o, t = values(ours, span), values(theirs, span)
                out.put(span, np.where(o == t, o, keep * o + take * t))
        return out.tensor()


@frozen
class TaskArithmetic(MergeStrategy):
    """`base + scale * (w_ours * (ours - base) + w_theirs * (theirs - base))`."""

    name: ClassVar[str] = "task-arithmetic"
    options_type: ClassVar[type] = TaskArithmeticOptions

    def merge(
        self,
        name: str,
        base: Tensor | None,
        ours: Tensor | None,
        theirs: Tensor | None,
        options: TaskArithmeticOptions,
    ) -> Tensor | Conflict:
        conflict = arithmetic_conflict(base, ours, theirs, needs_base=True)
        if conflict is not None:
            return conflict
        assert base is not None and ours is not None and theirs is not None
        kind = work_dtype(base.dtype)
        w_ours, w_theirs = (kind(w) for w in options.weights)
        scale = kind(options.scale)
        out = Output.like(base)
        with np.errstate(all="ignore"):
            for span in spans(base.numel):
                b = values(base, span)
                mixed = w_ours * (values(ours, span) - b) + w_theirs * (values(theirs, span) - b)
                if options.scale != 1.0:
                    mixed = mixed * scale
                out.put(span, np.where(mixed == 0, b, b + mixed))
        return out.tensor()


@theta.hookimpl
def theta_register_merge_strategies(register: Callable[[MergeStrategy], None]) -> None:
    register(Average())
    register(TaskArithmetic())


__all__ = ["Average", "AverageOptions", "TaskArithmetic", "TaskArithmeticOptions", "theta_register_merge_strategies"]
