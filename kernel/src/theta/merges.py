"""What a merge-strategy plugin implements."""

from __future__ import annotations

import abc
from typing import ClassVar

from theta.tensors import Tensor


class MergeStrategy(abc.ABC):
    """Combines two versions of one parameter that both branches changed."""

    name: ClassVar[str]

    @abc.abstractmethod
    def merge(self, name: str, base: Tensor | None, ours: Tensor, theirs: Tensor) -> Tensor | None:
        """The merged tensor, or None when this strategy cannot merge these inputs."""
