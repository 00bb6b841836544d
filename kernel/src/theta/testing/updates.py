"""Helpers for update-type tests that use real framework tensors: a small PyTorch transformer
layer in float32, float16 and bfloat16, the changes each update type is made for (a merged
LoRA, an IA3 scaling, a scattered edit), the stored size as the kernel counts it, an
exactness check, and the memory an encoding or decoding holds at its peak.

PyTorch is imported inside the functions that need it (and for `DTYPES`): a plugin whose
tests use these declares torch in its `[test]` extra; the kernel does not depend on it.
`committed_update_types` also needs `safetensors` and the `theta-format-safetensors` plugin.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from theta import bits
from theta.plugins import default_manager
from theta.store import codecs
from theta.tensors import Tensor
from theta.testing.contracts import encode_exactly
from theta.testing.repos import GitRepo, setup_git_home
from theta.testing.samples import Change
from theta.updates import Update, UpdateType

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


def __getattr__(name: str) -> Any:
    if name == "DTYPES":  # torch's float dtypes, imported when first asked for
        import torch

        return (torch.float32, torch.float16, torch.bfloat16)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def _trained(dtype: torch.dtype, sgd_steps: int) -> tuple[tuple[str, torch.Tensor], ...]:
    import torch

    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=256, batch_first=True)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.05)
    for _ in range(sgd_steps):
        x = torch.randn(4, 16, 64)
        optimizer.zero_grad()
        (layer(x) - x).pow(2).mean().backward()
        optimizer.step()
    return tuple((k, v.detach().to(dtype).contiguous()) for k, v in layer.state_dict().items())


def transformer(dtype: torch.dtype, sgd_steps: int = 0) -> dict[str, torch.Tensor]:
    """A transformer encoder layer's weights at init, or after a few SGD steps (every value moves).

    Built once per dtype and step count; each call returns copies."""
    return {k: v.clone() for k, v in _trained(dtype, sgd_steps)}


def feed_forward(dtype: torch.dtype) -> torch.Tensor:
    """A 256 x 64 feed-forward weight (linear1 of the layer)."""
    return transformer(dtype)["linear1.weight"]


def as_theta(t: torch.Tensor) -> Tensor:
    """The tensor as the kernel sees it; bfloat16 through its raw bits."""
    import torch

    if t.dtype == torch.bfloat16:
        return Tensor.from_numpy(t.contiguous().view(torch.int16).numpy().view(np.uint16), dtype_name="bfloat16")
    return Tensor.from_numpy(t.contiguous().numpy())


def scattered(w: torch.Tensor, share: float = 0.02, seed: int = 1) -> torch.Tensor:
    """`share` of the elements, at random places, moved by about 5% of their value."""
    import torch

    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(w.shape, generator=g) < share
    moved = w.float() * (1 + 0.05 * torch.randn(w.shape, generator=g))
    return torch.where(mask, moved.to(w.dtype), w)


def lora_factors(w: torch.Tensor, rank: int = 8, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """B (out x rank) and A (rank x in), float32, whose product is about as large as w's elements."""
    import torch

    g = torch.Generator().manual_seed(seed)
    scale = float(w.float().std()) / rank**0.5
    b = torch.randn(w.shape[0], rank, generator=g) * scale**0.5
    a = torch.randn(rank, w.shape[1], generator=g) * scale**0.5
    return b, a


def merged(w: torch.Tensor, b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """What merging a LoRA adapter does: w + b @ a in float32, cast back."""
    return (w.float() + b @ a).to(w.dtype)


def ia3_scale(length: int, seed: int = 3) -> torch.Tensor:
    import torch

    g = torch.Generator().manual_seed(seed)
    return 1 + 0.2 * torch.randn(length, generator=g)


def ia3_scaled(w: torch.Tensor, scale: torch.Tensor, axis: str) -> torch.Tensor:
    """w times a per-row or per-column vector, multiplied in w's own dtype (as merging IA3 does)."""
    s = scale.to(w.dtype)
    return w * (s[:, None] if axis == "rows" else s[None, :])


def perturbed(w: torch.Tensor, seed: int = 4) -> torch.Tensor:
    """Every element moved by noise as large as the weights: nothing to predict."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return (w.float() + torch.randn(w.shape, generator=g) * w.float().std()).to(w.dtype)


def change(label: str, new: torch.Tensor, base: torch.Tensor, side_data: Mapping[str, Tensor] | None = None) -> Change:
    """A `Change` for `UpdateTypeContract.friendly_changes` from torch tensors."""
    return Change(label=label, tensor=as_theta(new), base=as_theta(base), side_data=side_data)


def stored_size(arrays: Mapping[str, Tensor]) -> int:
    """Bytes in the object store, by the kernel's own rule: each array raw, or zstd-compressed
    when that saves enough; a dense tensor is always stored raw."""
    return sum(len(codecs.encode(a.data)[1]) for a in arrays.values())


def update_types() -> dict[str, UpdateType]:
    """Every installed update type, found through the `theta` entry points."""
    return dict(default_manager().registry.update_types)


def exact(
    kind: UpdateType, tensor: Tensor, base: Tensor | None, side: Mapping[str, Tensor] | None = None
) -> Update | None:
    """Encode; when the type applies, check that decoding gives the same bits and encoding again the same update."""
    return encode_exactly(
        kind, Change(label=f"{tensor.dtype} {list(tensor.shape)}", tensor=tensor, base=base, side_data=side)
    )


def sizes(tensor: torch.Tensor, base: torch.Tensor) -> dict[str, int | None]:
    """The stored size of every update type's exact encoding of `tensor` (None: not applicable)."""
    new, old = as_theta(tensor), as_theta(base)
    found = {}
    for name, kind in update_types().items():
        update = exact(kind, new, old if kind.needs_base else None)
        found[name] = None if update is None else new.nbytes if not kind.needs_base else stored_size(update.arrays)
    return found


def assert_smallest(name: str, found: dict[str, int | None], margin: float = 1.0) -> None:
    """`name` applies and beats every other type by at least `margin` times."""
    mine = found[name]
    assert mine is not None, found
    others = [size for other, size in found.items() if other != name and size is not None]
    assert all(mine * margin < size for size in others), found


def assert_no_gain_on_a_dense_change(name: str, dtype: torch.dtype) -> None:
    """With every element moved unpredictably, `name` does not apply or is not smaller than dense."""
    w = feed_forward(dtype)
    found = sizes(perturbed(w), w)
    assert found[name] is None or found[name] >= found["dense"], found


def assert_exact_on_training_changes(kind: UpdateType, dtype: torch.dtype) -> None:
    """Every weight after SGD steps, and after a scattered change, round-trips wherever `kind` applies."""
    init, trained = transformer(dtype), transformer(dtype, sgd_steps=3)
    for name, w in init.items():
        exact(kind, as_theta(trained[name]), as_theta(w))
        exact(kind, as_theta(scattered(w)), as_theta(w))


def assert_exact_on_special_values(kind: UpdateType) -> None:
    """NaN payloads, infinities, signed zeros, subnormals and float64 survive wherever `kind` applies."""
    rng = np.random.default_rng(5)
    for name in ("float32", "float64", "float16"):
        u = f"u{np.dtype(name).itemsize}"
        base = (rng.standard_normal((48, 40)) * 0.05).astype(name)
        base[0, :4] = [np.nan, np.inf, -np.inf, -0.0]
        base[1, :2] = [np.finfo(name).smallest_subnormal, np.finfo(name).max]
        for new in (base * (1 + 0.1 * rng.standard_normal(40)).astype(name), base.copy()):
            new[2, 3], new[5, 5], new[6, 6] = np.nan, -np.inf, 0.0
            new.view(u)[7, 7] ^= 1  # the lowest bit of one value
            new.view(u)[9, 9] = np.array(np.nan, name).view(u) | 3  # a NaN with a payload
            exact(kind, Tensor.from_numpy(new), Tensor.from_numpy(base))
    bits = rng.integers(0, 2**16, (64, 32), dtype=np.uint16)
    changed = bits.copy()
    changed[::7, ::5] ^= 0x8001
    exact(kind, Tensor.from_numpy(changed, dtype_name="bfloat16"), Tensor.from_numpy(bits, dtype_name="bfloat16"))


def committed_update_types(tmp_path: Path, dtype: torch.dtype) -> dict[str, str]:
    """Commit a transformer layer (safetensors) to a fresh git repository, then a version with a
    LoRA merged into linear1, an IA3 scale on linear2's columns and 2% of in_proj changed.

    Checks that git gives back both versions exactly and returns, for each parameter that
    changed, the update type that the stored version uses.
    """
    from safetensors.torch import save as save_torch

    repo = GitRepo(tmp_path / "work", setup_git_home(tmp_path / "home"))
    repo.path.mkdir()
    repo.git("init", "-q", "-b", "main")
    repo.theta("track", "*.safetensors")
    v1 = transformer(dtype)
    v2 = dict(v1)
    v2["linear1.weight"] = merged(v1["linear1.weight"], *lora_factors(v1["linear1.weight"]))
    v2["linear2.weight"] = ia3_scaled(v1["linear2.weight"], ia3_scale(256), "columns")
    v2["self_attn.in_proj_weight"] = scattered(v1["self_attn.in_proj_weight"])
    files = [save_torch(v) for v in (v1, v2)]
    for data, message in zip(files, ("v1", "v2"), strict=True):
        repo.write("model.safetensors", data)
        repo.commit_all(message)
    for rev, data in (("HEAD~1", files[0]), ("HEAD", files[1])):
        repo.git("checkout", "-q", rev, "--", "model.safetensors")
        assert repo.read("model.safetensors") == data, rev
    stored = json.loads(repo.blob("HEAD:model.safetensors"))["parameters"]
    return {name: p["steps"][-1]["update"] for name, p in stored.items() if len(p["steps"]) > 1}


def memory_test_matrix(shape: tuple[int, int], seed: int = 5) -> np.ndarray:
    """A float32 weight of `shape` whose values are exact in bfloat16 (normal, standard deviation 0.02)."""
    w = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32) * np.float32(0.02)
    return bits.to_values(bits.to_bits(w, "bfloat16"), "bfloat16")


def bfloat16_tensor(values: np.ndarray) -> Tensor:
    """`values` rounded to bfloat16, as a Theta tensor."""
    return Tensor.from_numpy(bits.to_bits(values, "bfloat16"), dtype_name="bfloat16")


def traced_peak(call: Callable[[], T]) -> tuple[T, int]:
    """`call()` and the most memory it held at once beyond what it returned, in bytes.

    Counts what Python and numpy allocate (tracemalloc): the arrays an encoding makes, not
    the interpreter's own.
    """
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        result = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak - start
