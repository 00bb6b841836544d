"""What a diff-renderer plugin implements."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

from attrs import frozen

from theta.tensors import Tensor


@frozen(kw_only=True)
class ParameterChange:
    """One parameter of a diff: `old` or `new` is None when it was added or removed."""

    name: str
    old: Callable[[], Tensor] | None
    new: Callable[[], Tensor] | None


class DiffRenderer(abc.ABC):
    name: ClassVar[str]

    @abc.abstractmethod
    def render(self, path: str, changes: list[ParameterChange]) -> str:
        """Text describing how the parameters of the checkpoint at `path` changed."""
