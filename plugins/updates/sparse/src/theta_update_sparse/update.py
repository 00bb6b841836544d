"""The sparse update type: the positions of the elements whose bits changed, and their new bits."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from attrs import frozen

from theta.bits import group_bytes, raw_bits, ungroup_bytes
from theta.errors import ThetaError
from theta.formats import TensorInfo
from theta.tensors import Tensor, dtype
from theta.updates import Update, UpdateType
from theta_update_sparse import indices

__all__ = ["SparseUpdate"]


@frozen
class SparseUpdate(UpdateType):
    name = "sparse"
    cost = 1

    def encode(
        self, tensor: Tensor, base: Tensor | None, side_data: Mapping[str, Tensor] | None = None
    ) -> Update | None:
        if base is None or not tensor.same_layout(base) or tensor.numel == 0:
            return None
        new = raw_bits(tensor)
        changed = new != raw_bits(base)
        count = int(np.count_nonzero(changed))
        if count * new.itemsize + min(count, tensor.numel // 8) >= tensor.nbytes:
            return None  # the values and the smallest possible index would not be smaller
        positions = np.flatnonzero(changed)
        # The changed bits, not the new values: a small change leaves the sign and exponent
        # bytes zero, and grouping bytes by significance gives zstd long runs of them.
        flips = group_bytes(new[positions] ^ raw_bits(base)[positions])
        forms = indices.encodings(positions, tensor.numel)
        form = min(indices.FORMS, key=lambda f: indices.stored_size(forms[f]))
        if forms[form].nbytes + flips.nbytes >= tensor.nbytes:
            return None
        arrays = {"index": Tensor.from_numpy(forms[form]), "flips": Tensor.from_numpy(flips)}
        return Update(arrays=arrays, params={"index": form, "count": int(positions.size)})

    def decode(self, update: Update, base: Tensor | None, info: TensorInfo) -> Tensor:
        if base is None or base.dtype != info.dtype or base.shape != info.shape:
            raise ThetaError(f"a sparse update needs a base of {info.dtype} {list(info.shape)}")
        if "index" not in update.arrays or "flips" not in update.arrays:
            raise ThetaError("a sparse update lacks its index or flips array; its metadata is damaged")
        form, flips = update.params.get("index"), update.arrays["flips"]
        itemsize = dtype(info.dtype).itemsize
        if form not in indices.FORMS or flips.dtype != "uint8" or flips.numel % itemsize:
            raise ThetaError(
                f"sparse update with index form {form!r} and {flips.dtype} flips cannot rebuild {info.dtype}"
            )
        positions = indices.decoded(form, update.arrays["index"].numpy(), base.numel)
        count = flips.numel // itemsize
        if positions.size != count or (positions.size and (positions[0] < 0 or positions[-1] >= base.numel)):
            raise ThetaError(
                f"sparse update holds {count} values for {positions.size} positions in {base.numel} elements"
            )
        bits = raw_bits(base).copy()
        bits[positions] ^= ungroup_bytes(flips.numpy().reshape(-1), itemsize)
        return Tensor.from_numpy(bits.reshape(info.shape), dtype_name=info.dtype)
