"""`slerp`: spherical interpolation from ours (t = 0) to theirs (t = 1), row by row.

Each slice along the first axis (a row), flattened, is one vector; `rows = false` takes the
whole tensor, flattened, as one vector instead, which is what mergekit 0.1.5's `slerp` merge
method does. For each pair of vectors v0 (ours) and v1 (theirs), cos = the dot product of
v0/|v0| and v1/|v1| (a vector of norm at most 1e-8 is not normalised), clamped to [-1, 1];
when |cos| > 0.9995 the vectors are interpolated linearly, `(1 - t)·v0 + t·v1`, else with
θ = arccos(cos): `sin((1 - t)·θ)/sin θ · v0 + sin(t·θ)/sin θ · v1`. A 1-D tensor's rows are
single elements, so it is interpolated linearly. The merge base is not used.

The three sums per row (|v0|², |v1|², v0·v1) are accumulated in float64 over spans of the
tensor, so a row of any length is streamed; the interpolation itself is computed in float32
(float64 for float64 tensors) and rounded back to the parameter's dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
from attrs import field, frozen

import theta
from theta.merges import Conflict, MergeStrategy, Output, arithmetic_conflict, between, spans, values, work_dtype
from theta.tensors import Tensor

COLINEAR = 0.9995
NORM_EPS = 1e-8


@frozen(kw_only=True)
class SlerpOptions:
    t: float = field(default=0.5, validator=between(0.0, 1.0))
    """Where to interpolate: 0 gives ours, 1 gives theirs."""
    rows: bool = True
    """Interpolate each row on its own; false: the whole tensor as one vector (mergekit's slerp)."""


def _row_sums(ours: Tensor, theirs: Tensor, rows: int, length: int) -> tuple[np.ndarray, ...]:
    sums = [np.zeros(rows, dtype=np.float64) for _ in range(3)]
    for span in spans(ours.numel):
        o, t = values(ours, span), values(theirs, span)
        index = np.arange(span.start, span.stop, dtype=np.int64) // length
        first = int(index[0]) if len(index) else 0
        local = index - first
        count = int(local[-1]) + 1 if len(local) else 0
        for total, product in zip(sums, (o * o, t * t, o * t), strict=True):
            total[first : first + count] += np.bincount(local, weights=product, minlength=count)
    return tuple(sums)


def coefficients(
    ours: Tensor, theirs: Tensor, t: float, rows: int, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the factors of ours and of theirs, and whether the row is interpolated linearly."""
    oo, tt, ot = _row_sums(ours, theirs, rows, length)
    norm0, norm1 = np.sqrt(oo), np.sqrt(tt)
    cos = ot / (np.where(norm0 > NORM_EPS, norm0, 1.0) * np.where(norm1 > NORM_EPS, norm1, 1.0))
    cos = np.clip(cos, -1.0, 1.0)
    linear = np.abs(cos) > COLINEAR
    theta0 = np.arccos(cos)
    sin0 = np.sin(theta0)
    c0 = np.where(linear, 1.0 - t, np.sin(theta0 - theta0 * t) / sin0)
    c1 = np.where(linear, t, np.sin(theta0 * t) / sin0)
    return c0, c1, linear


@frozen
class Slerp(MergeStrategy):
    name: ClassVar[str] = "slerp"
    options_type: ClassVar[type] = SlerpOptions

    def merge(
        self, name: str, base: Tensor | None, ours: Tensor | None, theirs: Tensor | None, options: SlerpOptions
    ) -> Tensor | Conflict:
        conflict = arithmetic_conflict(None, ours, theirs, needs_base=False)
        if conflict is not None:
            return conflict
        assert ours is not None and theirs is not None
        out = Output.like(ours)
        numel = ours.numel
        if numel == 0:
            return out.tensor()
        rows = ours.shape[0] if options.rows and ours.shape else 1
        length = numel // rows
        kind = work_dtype(ours.dtype)
        with np.errstate(all="ignore"):
            c0, c1, linear = coefficients(ours, theirs, options.t, rows, length)
            lerp0, lerp1 = kind(1.0 - options.t), kind(options.t)
            for span in spans(numel):
                o, t = values(ours, span), values(theirs, span)
                row = np.arange(span.start, span.stop, dtype=np.int64) // length
                line = linear[row]
                mixed = c0[row].astype(kind) * o + c1[row].astype(kind) * t
                lerped = np.where(o == t, o, lerp0 * o + lerp1 * t)
                out.put(span, np.where(line, lerped, mixed))
        return out.tensor()


@theta.hookimpl
def theta_register_merge_strategies(register: Callable[[MergeStrategy], None]) -> None:
    register(Slerp())
