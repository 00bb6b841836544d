"""theta-format-npz: NumPy `.npz` archives as Theta checkpoints (an example third-party plugin)."""

from __future__ import annotations

from collections.abc import Callable

import theta
from theta.formats import CheckpointFormat
from theta_format_npz.format import NpzFormat

__all__ = ["NpzFormat"]


@theta.hookimpl
def theta_register_formats(register: Callable[[CheckpointFormat], None]) -> None:
    register(NpzFormat())
