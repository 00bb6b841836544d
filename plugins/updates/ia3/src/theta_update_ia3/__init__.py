"""The ia3 update type: a per-row or per-column scale (IA3) plus an exact byte-grouped XOR residual."""

from __future__ import annotations

from collections.abc import Callable

import theta
from theta.updates import UpdateType
from theta_update_ia3.update import IA3Update

__all__ = ["IA3Update"]


@theta.hookimpl
def theta_register_update_types(register: Callable[[UpdateType], None]) -> None:
    register(IA3Update())
