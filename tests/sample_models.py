"""Small real safetensors checkpoints for the end-to-end tests, and edits of them."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save


def make_model(seed: int = 0, layers: int = 4, width: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    model: dict[str, np.ndarray] = {"embed.weight": rng.standard_normal((100, width)).astype(np.float32)}
    for i in range(layers):
        model[f"layers.{i}.attn.weight"] = rng.standard_normal((width, width)).astype(np.float32)
        model[f"layers.{i}.mlp.weight"] = rng.standard_normal((width * 2, width)).astype(np.float16)
        model[f"layers.{i}.norm.bias"] = np.zeros(width, dtype=np.float32)
    return model


def checkpoint_bytes(model: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    return st_save(model, metadata=metadata or {"framework": "numpy"})


def edited(data: bytes, name: str, delta: float = 1.0) -> bytes:
    """The checkpoint with one element of one tensor changed."""
    model = dict(st_load(data))
    tensor = model[name].copy()
    tensor.reshape(-1)[0] += delta
    model[name] = tensor
    return checkpoint_bytes(model)
