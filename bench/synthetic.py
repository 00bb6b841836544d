"""A synthetic transformer-like checkpoint: about 100 tensors, written by safetensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file


def transformer_shapes(total_bytes: int, layers: int = 12) -> dict[str, tuple[int, ...]]:
    """Shapes of a float32 model of roughly `total_bytes`: embeddings and 8 tensors per layer."""
    # per layer: 4 d*d attention + 2 * 4d*d feed-forward + small vectors  ~ 12 d^2; embeddings vocab*d
    vocab_factor = 8
    d = int((total_bytes / 4 / (12 * layers + vocab_factor)) ** 0.5) // 64 * 64
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (vocab_factor * d, d)}
    for i in range(layers):
        p = f"layers.{i}."
        shapes.update({
            p + "attn.q.weight": (d, d), p + "attn.k.weight": (d, d),
            p + "attn.v.weight": (d, d), p + "attn.o.weight": (d, d),
            p + "mlp.up.weight": (4 * d, d), p + "mlp.down.weight": (d, 4 * d),
            p + "norm1.weight": (d,), p + "norm2.weight": (d,),
        })  # fmt: skip
    shapes["final_norm.weight"] = (d,)
    return shapes


def make_model(total_bytes: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in transformer_shapes(total_bytes).items():
        if len(shape) == 1:
            out[name] = np.ones(shape, dtype=np.float32)
        else:
            out[name] = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
    return out


def write(model: dict[str, np.ndarray], path: Path) -> None:
    save_file(model, str(path), metadata={"format": "pt"})
