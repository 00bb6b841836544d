"""The ia3 update type: W = base * s, one scale per row or per column, plus an exact residual."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from attrs import frozen

from theta import bits as _bits
from theta.errors import ThetaError
from theta.formats import TensorInfo
from theta.tensors import Tensor
from theta.updates import Update, UpdateType
from theta_update_ia3.scales import AXES, estimated_scale, part, scaled, scaling_axes

__all__ = ["IA3Update"]


def given_scale(side_data: Mapping[str, Tensor], rows: int, cols: int) -> list[tuple[str, np.ndarray]]:
    """The `ia3` vector from `--update-data`, with the axes (rows, columns) its length fits."""
    given = side_data["ia3"]
    if given.dtype not in _bits.FLOATS:
        raise ThetaError(f"ia3 update data: 'ia3' must be a float array, got {given.dtype}")
    vector = _bits.to_values(_bits.raw_bits(given), given.dtype).astype(np.float32)
    axes = [axis for axis, length in zip(AXES, (rows, cols), strict=True) if vector.size == length]
    if not axes:
        raise ThetaError(
            f"ia3 update data: 'ia3' has {vector.size} values; a weight of {rows} x {cols} needs {rows} or {cols}"
        )
    return [(axis, vector) for axis in axes]


def approximation(
    base_bits: np.ndarray, name: str, vector: np.ndarray, axis: str
) -> Callable[[slice | np.ndarray], np.ndarray]:
    """The base scaled, for the rows asked for (a block of rows, or chosen ones)."""
    return lambda rows: scaled(_bits.to_values(base_bits[rows], name), part(vector, rows, axis), axis)


def sampled_size(base_bits: np.ndarray, target_bits: np.ndarray, name: str, axis: str, vector: np.ndarray) -> float:
    """The stored size of a scale and its residual, estimated on evenly spaced rows."""
    rows, cols = base_bits.shape
    sample = _bits.evenly_spaced(rows, _bits.SAMPLE_ELEMENTS // cols)
    planes = _bits.residual(target_bits[sample], approximation(base_bits, name, vector, axis)(sample), name)
    return vector.nbytes + _bits.estimated_size(planes, target_bits.itemsize) * rows / sample.size


@frozen
class IA3Update(UpdateType):
    name = "ia3"

    def encode(
        self, tensor: Tensor, base: Tensor | None, side_data: Mapping[str, Tensor] | None = None
    ) -> Update | None:
        found = _bits.matrices(tensor, base)
        if found is None:
            return None
        target_bits, base_bits = found
        name = tensor.dtype
        rows, cols = base_bits.shape
        with np.errstate(all="ignore"):
            if side_data and "ia3" in side_data:
                candidates, source = given_scale(side_data, rows, cols), "update-data"
            else:
                axes = scaling_axes(base_bits, target_bits, name)
                if not axes:
                    return None  # not a scaling along either axis (a full fine-tune)
                candidates = [(axis, estimated_scale(base_bits, target_bits, name, axis)) for axis in axes]
                source = "estimated"
            axis, vector = min(candidates, key=lambda c: sampled_size(base_bits, target_bits, name, *c))
            planes = _bits.residual_by_rows(target_bits, approximation(base_bits, name, vector, axis), name)
        if not _bits.worthwhile(vector.nbytes + _bits.estimated_size(planes, target_bits.itemsize), target_bits):
            return None
        arrays = {"scale": Tensor.from_numpy(vector), **_bits.residual_arrays(planes)}
        return Update(arrays=arrays, params={"axis": axis, "scale": source})

    def decode(self, update: Update, base: Tensor | None, info: TensorInfo) -> Tensor:
        base_bits = _bits.base_bits(base, info, "an ia3")
        rows, cols = base_bits.shape
        axis = update.params.get("axis")
        (vector,) = _bits.arrays(update.arrays, ("scale",), "an ia3")
        if axis not in AXES or vector.shape != ((rows,) if axis == "rows" else (cols,)):
            raise ThetaError(f"ia3 scale of {list(vector.shape)} along {axis!r} does not fit {list(info.shape)}")
        with np.errstate(all="ignore"):
            return _bits.corrected_by_rows(approximation(base_bits, info.dtype, vector, axis), update.arrays, info)
