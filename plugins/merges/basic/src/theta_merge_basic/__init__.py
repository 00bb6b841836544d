"""Merge strategies that take one version whole (`ours`, `theirs`, `base`) or leave a conflict (`fail`).

They decide without loading any tensor: the kernel keeps the chosen version's stored entry as
it is, so nothing is fetched, computed or stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from attrs import frozen

import theta
from theta.merges import Conflict, MergeStrategy, Side
from theta.tensors import Tensor


class Take(MergeStrategy):
    """Take one version as it is (a version that lacks the parameter leaves it out)."""

    side: ClassVar[Side]

    def choose(self, name: str, options: Any) -> Side:
        return self.side

    def merge(
        self, name: str, base: Tensor | None, ours: Tensor | None, theirs: Tensor | None, options: Any
    ) -> Tensor | None:
        return {"base": base, "ours": ours, "theirs": theirs}[self.side]


@frozen
class Ours(Take):
    name = "ours"
    side = "ours"


@frozen
class Theirs(Take):
    name = "theirs"
    side = "theirs"


@frozen
class Base(Take):
    name = "base"
    side = "base"


@frozen
class Fail(MergeStrategy):
    """Leave the parameter in conflict, for a person to resolve."""

    name: ClassVar[str] = "fail"
    REASON: ClassVar[str] = "changed differently on both sides, and the policy says to leave it to you"

    def choose(self, name: str, options: Any) -> Conflict:
        return Conflict(reason=self.REASON)

    def merge(
        self, name: str, base: Tensor | None, ours: Tensor | None, theirs: Tensor | None, options: Any
    ) -> Conflict:
        return Conflict(reason=self.REASON)


@theta.hookimpl
def theta_register_merge_strategies(register: Callable[[MergeStrategy], None]) -> None:
    for strategy in (Ours(), Theirs(), Base(), Fail()):
        register(strategy)
