"""A small real model (a PyTorch module's state dict, saved with safetensors) and a fine-tune of it
that adds, removes, reshapes and changes parameters: the versions the diff tests compare."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load as st_load

MODEL = "model.safetensors"
ADDED, REMOVED, RESHAPED = "head.weight", "norm.bias", "fc2.weight"
CHANGED = ("embed.weight", "fc1.bias", "fc1.weight")
UNCHANGED = ("fc2.bias", "norm.weight")


def tiny_state() -> dict:
    import torch

    torch.manual_seed(0)
    model = torch.nn.ModuleDict(
        {
            "embed": torch.nn.Embedding(50, 16),
            "fc1": torch.nn.Linear(16, 32),
            "fc2": torch.nn.Linear(32, 16),
            "norm": torch.nn.LayerNorm(16),
        }
    )
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def save(state: dict) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()}, metadata={"format": "pt"})


def version_one() -> bytes:
    return save(tiny_state())


def version_two() -> bytes:
    """The fine-tune: one parameter added, one removed, one reshaped, three changed."""
    import torch

    state = tiny_state()
    state["embed.weight"][:3] *= 1.1
    state["fc1.bias"][:4] += 0.05
    state["fc1.weight"] += 1e-3
    state[RESHAPED] = state[RESHAPED].reshape(32, 16)
    del state[REMOVED]
    torch.manual_seed(1)
    state[ADDED] = torch.nn.Linear(16, 4, bias=False).weight.detach().clone()
    return save(state)


def arrays(data: bytes) -> dict[str, np.ndarray]:
    return dict(st_load(data))


def expected_figures(old: np.ndarray, new: np.ndarray) -> dict[str, float]:
    """The figures `git theta diff --json` reports, computed here with plain numpy in float64."""
    a, b = old.astype(np.float64).ravel(), new.astype(np.float64).ravel()
    delta = b - a
    bits = f"u{old.dtype.itemsize}"
    return {
        "l2": float(np.linalg.norm(delta)),
        "relative": float(np.linalg.norm(delta) / np.linalg.norm(a)),
        "max_abs": float(np.abs(delta).max()),
        "changed_fraction": float(np.mean(old.ravel().view(bits) != new.ravel().view(bits))),
        "cosine": float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))),
    }
