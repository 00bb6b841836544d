"""The low-rank update type: a rank-r change (LoRA) plus an exact byte-grouped XOR residual."""

from __future__ import annotations

from collections.abc import Callable

import theta
from theta.updates import UpdateType
from theta_update_low_rank.update import LowRankUpdate

__all__ = ["LowRankUpdate"]


@theta.hookimpl
def theta_register_update_types(register: Callable[[UpdateType], None]) -> None:
    register(LowRankUpdate())
