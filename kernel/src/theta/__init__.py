"""Theta: version control for machine-learning models, inside Git.

The names in `__all__` are the SDK: what a plugin may import from `theta` (each also lives
in the module named in `SDK`). Everything else is the kernel's own and may change between
releases. The names load on first use, so `import theta` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("theta")
"""Marker for plugin hook implementations: `@theta.hookimpl def theta_register_formats(...)`."""

SDK: dict[str, str] = {
    # errors a plugin raises
    "ThetaError": "theta.errors",
    "FormatError": "theta.errors",
    # tensors
    "Tensor": "theta.tensors",
    "DType": "theta.tensors",
    "dtype": "theta.tensors",
    # checkpoint formats
    "CheckpointFormat": "theta.formats",
    "Checkpoint": "theta.formats",
    "Layout": "theta.formats",
    "Source": "theta.formats",
    "TensorInfo": "theta.formats",
    # update types
    "UpdateType": "theta.updates",
    "Update": "theta.updates",
    # merge strategies and diff renderers
    "MergeStrategy": "theta.merges",
    "DiffRenderer": "theta.diffs",
}
"""SDK name -> the module that defines it. Helper modules of the SDK: `theta.bits` (exact bit
arithmetic, XOR residuals, stored-size estimates), `theta.splice` (a file minus its tensor
regions, plus an index), `theta.sizes`, and `theta.testing` (fixtures and contract tests)."""

__all__ = ["SDK", "__version__", "hookimpl", *SDK]

API: dict[str, str] = {"load": "theta.api", "info": "theta.api", "diff": "theta.api"}
"""The Python API for notebooks and training scripts (docs/diffing.md), loaded on first use too."""


def __getattr__(name: str) -> Any:
    module = SDK.get(name) or API.get(name)
    if module is None:
        raise AttributeError(f"module 'theta' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
