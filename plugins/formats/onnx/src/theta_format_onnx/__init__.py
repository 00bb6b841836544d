"""The ONNX format plugin: initializers are the parameters, the rest of the model is the skeleton."""

from __future__ import annotations

from collections.abc import Callable

import theta
from theta_format_onnx.format import OnnxFormat

__all__ = ["OnnxFormat"]


@theta.hookimpl
def theta_register_formats(register: Callable[[OnnxFormat], None]) -> None:
    register(OnnxFormat())
