"""The PyTorch checkpoint format plugin (files written by `torch.save`)."""

from __future__ import annotations

from collections.abc import Callable

import theta
from theta_format_torch.format import TorchFormat

__all__ = ["TorchFormat"]


@theta.hookimpl
def theta_register_formats(register: Callable[[TorchFormat], None]) -> None:
    register(TorchFormat())
