"""The safetensors format plugin."""

from __future__ import annotations

from collections.abc import Callable

import theta
from theta_format_safetensors.format import SafetensorsFormat

__all__ = ["SafetensorsFormat"]


@theta.hookimpl
def theta_register_formats(register: Callable[[SafetensorsFormat], None]) -> None:
    register(SafetensorsFormat())
