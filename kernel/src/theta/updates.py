"""What an update-type plugin implements.

An update type encodes a tensor, given the previous version of that tensor (its base), into
named arrays plus small JSON parameters; the kernel stores each array as one object and
the parameters in the metadata file. Decoding must give back the exact bits: the kernel
checks the decoded tensor's hash at commit time and at checkout, and falls back to a dense
version when an encoding is not exact.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

from attrs import field, frozen

from theta.formats import TensorInfo
from theta.tensors import Tensor


@frozen(kw_only=True)
class Update:
    arrays: Mapping[str, Tensor] = field(factory=dict)
    params: Mapping[str, Any] = field(factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


class UpdateType(abc.ABC):
    """An update type. Implement as a frozen attrs class and register an instance.

    `needs_base` is False only for types that store the whole tensor (dense). `cost` ranks
    how expensive `encode` is (1 cheap, like comparing bits; 3 costly, like an SVD): the
    kernel tries cheap types first and stops once an exact encoding is small enough. Before a
    large matrix is encoded whole, the kernel runs `encode` on a sample of its rows to tell
    whether the type may pay; `screens_itself = True` leaves that out, for a type whose
    `encode` judges a sample of the change before any work on the whole tensor and returns
    None when it would not store the change well under the dense size. `encode` and `decode`
    run on worker threads, for two parameters at once: keep no state between calls.
    """

    name: ClassVar[str]
    needs_base: ClassVar[bool] = True
    cost: ClassVar[int] = 2
    screens_itself: ClassVar[bool] = False

    @abc.abstractmethod
    def encode(
        self, tensor: Tensor, base: Tensor | None, side_data: Mapping[str, Tensor] | None = None
    ) -> Update | None:
        """Encode `tensor` relative to `base`; None when this type cannot represent it.

        `side_data` holds every array the user supplied for this parameter with
        `git theta add --update-data` (LoRA factors, IA3 scales), possibly meant for another
        update type: use the names this type defines and ignore the others. Raise
        `ThetaError` when this type's own data is malformed; the kernel adds the file and
        parameter to the message.
        """

    @abc.abstractmethod
    def decode(self, update: Update, base: Tensor | None, info: TensorInfo) -> Tensor:
        """Rebuild the tensor of layout `info` from `update` and `base`."""
