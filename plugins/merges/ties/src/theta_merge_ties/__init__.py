"""`ties` (mergekit's `ties`) and `dare` (mergekit's `dare_linear`, or `dare_ties` with sign election).

Both work on the two changes Δ = side - base, in float32 (float64 for float64 tensors), span
by span, and round the result back to the parameter's dtype (nearest even):
- `ties` trims each Δ to its k = max(1, floor(density·n)) largest magnitudes (no trim at
  density 1), weights them, elects a sign per element (that of the sum of the weighted
  deltas, positive at 0), keeps the weighted deltas of that sign and divides their sum by the
  sum of their weights (1 where none is kept): base + scale·merged.
- `dare` keeps each element of each Δ with probability `density` (reproducibly: see
  `dropout`), rescales the kept ones so that Δ keeps its L1 norm (`rescale`), then combines
  them as task arithmetic (base + scale·Σ wᵢΔᵢ) or, with `sign_election`, as TIES without
  trimming.
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
    at_least,
    between,
    each,
    finite,
    spans,
    values,
    work_dtype,
)
from theta.tensors import Tensor
from theta_merge_ties.combine import combine
from theta_merge_ties.dropout import keep_masks
from theta_merge_ties.select import key_dtype, magnitude_keys, top_k

# Elements combined at a time: a span's temporaries stay in the processor's cache (spans of a
# million elements are twice as slow; much shorter ones pay NumPy's per-call cost).
SPAN = 1 << 17

RESCALE_EPS = 1e-7  # below this L1 norm (before or after the drop), mergekit leaves a change unscaled


@frozen(kw_only=True)
class TiesOptions:
    density: float = field(default=1.0, validator=between(0.0, 1.0, low_open=True))
    """The share of each change's elements kept, by magnitude."""
    scale: float = field(default=1.0, validator=finite())
    """mergekit's `lambda`: how much of the merged change is added to the base."""
    weights: tuple[float, float] = field(default=(1.0, 1.0), validator=each(finite()))
    """The weights of our change and of theirs."""


@frozen(kw_only=True)
class DareOptions:
    density: float = field(default=1.0, validator=between(0.0, 1.0, low_open=True))
    """The probability that an element of a change is kept."""
    rescale: bool = True
    """Scale the kept elements so that each change keeps its L1 norm."""
    sign_election: bool = False
    """Combine as TIES (dare_ties) instead of summing (dare_linear)."""
    seed: int = field(default=0, validator=at_least(0))
    """With the parameter's name, seeds the drop."""
    scale: float = field(default=1.0, validator=finite())
    weights: tuple[float, float] = field(default=(1.0, 1.0), validator=each(finite()))


def _delta(side: Tensor, base: Tensor, span: slice) -> np.ndarray:
    return values(side, span) - values(base, span)


def _change_keys(side: Tensor, base: Tensor) -> Callable[[slice, np.ndarray], None]:
    """Writes the magnitude keys of elements `span` of the change side - base into `out`, in place."""
    kind = work_dtype(base.dtype)

    def fill(span: slice, out: np.ndarray) -> None:
        change = out.view(kind)
        np.subtract(values(side, span), values(base, span), out=change)
        magnitude_keys(change, out=out)

    return fill


@frozen
class Ties(MergeStrategy):
    name: ClassVar[str] = "ties"
    options_type: ClassVar[type] = TiesOptions

    def merge(
        self, name: str, base: Tensor | None, ours: Tensor | None, theirs: Tensor | None, options: TiesOptions
    ) -> Tensor | Conflict:
        conflict = arithmetic_conflict(base, ours, theirs, needs_base=True)
        if conflict is not None:
            return conflict
        assert base is not None and ours is not None and theirs is not None
        kind = work_dtype(base.dtype)
        sides = (ours, theirs)
        weights = (kind(options.weights[0]), kind(options.weights[1]))
        out = Output.like(base)
        with np.errstate(all="ignore"):
            scratch = np.empty(base.numel if options.density < 1 else 0, dtype=key_dtype(kind))  # for both sides
            trims = [top_k(_change_keys(side, base), scratch, options.density) for side in sides]
            del scratch
            for span in spans(base.numel, SPAN):
                b = values(base, span)
                deltas = []
                for side, trim in zip(sides, trims, strict=True):
                    d = values(side, span) - b
                    if trim is not None:
                        trim.trim(d)
                    deltas.append(d)
                out.put(span, combine(b, (deltas[0], deltas[1]), weights, options.scale, elect_sign=True))
        return out.tensor()


@frozen
class Dare(MergeStrategy):
    name: ClassVar[str] = "dare"
    options_type: ClassVar[type] = DareOptions

    def merge(
        self, name: str, base: Tensor | None, ours: Tensor | None, theirs: Tensor | None, options: DareOptions
    ) -> Tensor | Conflict:
        conflict = arithmetic_conflict(base, ours, theirs, needs_base=True)
        if conflict is not None:
            return conflict
        assert base is not None and ours is not None and theirs is not None
        kind = work_dtype(base.dtype)
        sides = (ours, theirs)
        weights = (kind(options.weights[0]), kind(options.weights[1]))
        drop = options.density < 1
        out = Output.like(base)
        with np.errstate(all="ignore"):
            factors = [self._factor(name, index, side, base, options) for index, side in enumerate(sides)]
            masks = [
                keep_masks(options.seed, name, index, options.density, base.numel, SPAN) if drop else None
                for index in range(len(sides))
            ]
            for span in spans(base.numel, SPAN):
                b = values(base, span)
                deltas = []
                for side, mask, factor in zip(sides, masks, factors, strict=True):
                    d = values(side, span) - b
                    if mask is not None:
                        _, keep = next(mask)
                        d *= keep
                    if factor is not None:
                        d *= factor
                    deltas.append(d)
                elect = options.sign_election
                out.put(span, combine(b, (deltas[0], deltas[1]), weights, options.scale, elect_sign=elect))
        return out.tensor()

    @staticmethod
    def _factor(name: str, index: int, side: Tensor, base: Tensor, options: DareOptions) -> np.floating | None:
        """What the kept elements of this side's change are multiplied by (None: nothing)."""
        if not options.rescale or options.density >= 1:
            return None
        before = after = 0.0
        for span, keep in keep_masks(options.seed, name, index, options.density, base.numel):
            magnitude = np.abs(_delta(side, base, span))
            before += float(magnitude.sum(dtype=np.float64))
            after += float(magnitude[keep].sum(dtype=np.float64))
        if before < RESCALE_EPS or after < RESCALE_EPS:
            return None
        return work_dtype(base.dtype)(before / after)


@theta.hookimpl
def theta_register_merge_strategies(register: Callable[[MergeStrategy], None]) -> None:
    register(Ties())
    register(Dare())
