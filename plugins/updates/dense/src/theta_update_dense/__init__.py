"""The dense update type: the tensor itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from attrs import frozen

import theta
from theta.errors import ThetaError
from theta.formats import TensorInfo
from theta.tensors import Tensor
from theta.updates import Update, UpdateType


@frozen
class DenseUpdate(UpdateType):
    name = "dense"
    needs_base = False

    def encode(self, tensor: Tensor, base: Tensor | None, side_data: Mapping[str, Tensor] | None = None) -> Update:
        return Update(arrays={"value": tensor})

    def decode(self, update: Update, base: Tensor | None, info: TensorInfo) -> Tensor:
        value = update.arrays["value"]
        if value.dtype != info.dtype or value.shape != info.shape:
            raise ThetaError(
                f"dense object holds {value.dtype} {list(value.shape)}, expected {info.dtype} {list(info.shape)}"
            )
        return value


@theta.hookimpl
def theta_register_update_types(register: Callable[[UpdateType], None]) -> None:
    register(DenseUpdate())
