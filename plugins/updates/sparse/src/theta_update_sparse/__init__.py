"""The sparse update type: only the elements whose bits changed, by position."""

from __future__ import annotations

from collections.abc import Callable

import theta
from theta.updates import UpdateType
from theta_update_sparse.update import SparseUpdate

__all__ = ["SparseUpdate"]


@theta.hookimpl
def theta_register_update_types(register: Callable[[UpdateType], None]) -> None:
    register(SparseUpdate())
