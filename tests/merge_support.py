"""Helpers of the merge tests: models as NumPy arrays, branches built from real checkpoints, and
the strategies' definitions computed independently with NumPy (float32 arithmetic)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import ml_dtypes
import numpy as np
import torch
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from theta.testing import GitRepo

MODEL = "model.safetensors"
POLICY = ".theta/merge-policy.toml"
Model = dict[str, np.ndarray]


def make_model(seed: int = 0, width: int = 32) -> Model:
    rng = np.random.default_rng(seed)
    model: Model = {"embed.weight": rng.standard_normal((50, width)).astype(np.float32)}
    for i in range(3):
        model[f"layers.{i}.attn.weight"] = rng.standard_normal((width, width)).astype(np.float32)
        model[f"layers.{i}.norm.weight"] = np.ones(width, dtype=np.float32) + rng.normal(0, 0.1, width).astype(
            np.float32
        )
    model["head.bias"] = rng.normal(0, 0.1, 10).astype(np.float32)
    return model


def tuned(model: Model, names: list[str], seed: int, size: float = 0.05) -> Model:
    """`model` with every element of `names` changed a little (a fine-tune of those parameters)."""
    rng = np.random.default_rng(seed)
    out = dict(model)
    for name in names:
        out[name] = (model[name] + rng.normal(0, size, model[name].shape)).astype(model[name].dtype)
    return out


def save(model: Model, metadata: dict[str, str] | None = None) -> bytes:
    return st_save(model, metadata=metadata or {"framework": "numpy"})


def load(data: bytes) -> Model:
    return dict(st_load(data))


def save_bf16(model: Model) -> bytes:
    """A safetensors checkpoint of bfloat16 tensors (written by torch)."""
    from safetensors.torch import save as torch_save

    return torch_save({k: torch.from_numpy(v.astype(np.float32)).to(torch.bfloat16) for k, v in model.items()})


def load_bf16(data: bytes) -> dict[str, np.ndarray]:
    """bfloat16 tensors of a safetensors checkpoint, as float32 values."""
    from safetensors.torch import load as torch_load

    return {k: v.float().numpy() for k, v in torch_load(data).items()}


def as_bf16(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to bfloat16 (nearest even), back as float32."""
    return values.astype(ml_dtypes.bfloat16).astype(np.float32)


def commit(repo: GitRepo, files: dict[str, bytes], message: str) -> str:
    for path, data in files.items():
        repo.write(path, data)
    return repo.commit_all(message)


def branches(
    repo: GitRepo, base: bytes, ours: bytes, theirs: bytes, path: str = MODEL, pattern: str = "*.safetensors"
) -> None:
    """main holds `base`, then `ours`; branch `theirs` holds `theirs`; main is checked out."""
    repo.theta("track", pattern)
    commit(repo, {path: base}, "base")
    repo.git("checkout", "-q", "-b", "theirs")
    commit(repo, {path: theirs}, "theirs")
    repo.git("checkout", "-q", "main")
    commit(repo, {path: ours}, "ours")


def write_policy(repo: GitRepo, text: str, commit_it: bool = True) -> None:
    repo.write(POLICY, text.encode())
    if commit_it:
        repo.git("add", POLICY)
        repo.git("commit", "-q", "-m", "merge policy")


def merge(repo: GitRepo, branch: str = "theirs", env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """`git merge --no-edit BRANCH`, not failing: returns the completed process."""
    if env is None:
        return repo.git("merge", "--no-edit", branch, check=False)
    import subprocess

    proc = subprocess.run(
        ["git", "merge", "--no-edit", branch], cwd=repo.path, env={**repo.env, **env}, capture_output=True, text=True
    )
    return proc


def stored(repo: GitRepo, rev_path: str = f"HEAD:{MODEL}") -> dict:  # type: ignore[type-arg]
    return json.loads(repo.blob(rev_path))


def unmerged(repo: GitRepo, path: str = MODEL) -> list[str]:
    return [line.split()[2] for line in repo.git("ls-files", "-u", "--", path).stdout.splitlines()]


# ---- the strategies' definitions, in float32 -----------------------------------------------


def average(b: np.ndarray, o: np.ndarray, t: np.ndarray, weight: float = 0.5) -> np.ndarray:
    return np.float32(1 - weight) * o + np.float32(weight) * t


def task_arithmetic(b, o, t, scale=1.0, weights=(1.0, 1.0)):  # type: ignore[no-untyped-def]
    mixed = np.float32(weights[0]) * (o - b) + np.float32(weights[1]) * (t - b)
    return b + np.float32(scale) * mixed


def _trim(delta: np.ndarray, density: float) -> np.ndarray:
    if density >= 1:
        return delta
    k = max(1, int(density * delta.size))
    order = np.argsort(-np.abs(delta).reshape(-1), kind="stable")
    keep = np.zeros(delta.size, dtype=bool)
    keep[order[:k]] = True
    return np.where(keep.reshape(delta.shape), delta, np.float32(0))


def _elect(b, deltas, weights, scale):  # type: ignore[no-untyped-def]
    w = [np.float32(x) for x in weights]
    weighted = [w[0] * deltas[0], w[1] * deltas[1]]
    elected = np.where(weighted[0] + weighted[1] >= 0, np.float32(1), np.float32(-1))
    kept = [(np.sign(x) == elected).astype(np.float32) for x in weighted]
    divisor = w[0] * kept[0] + w[1] * kept[1]
    divisor[divisor == 0] = 1
    return b + np.float32(scale) * ((weighted[0] * kept[0] + weighted[1] * kept[1]) / divisor)


def ties(b, o, t, density=1.0, scale=1.0, weights=(1.0, 1.0)):  # type: ignore[no-untyped-def]
    return _elect(b, [_trim(o - b, density), _trim(t - b, density)], weights, scale)


def dare(name, b, o, t, density=1.0, rescale=True, seed=0, sign_election=False, scale=1.0, weights=(1.0, 1.0)):  # type: ignore[no-untyped-def]
    deltas = []
    for side, x in enumerate((o, t)):
        d = x - b
        if density < 1:
            words = np.frombuffer(hashlib.sha256(name.encode()).digest(), dtype=">u4").tolist()
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *words, side])))
            kept = np.where(rng.random(d.size).reshape(d.shape) < density, d, np.float32(0))
            before, after = np.abs(d).sum(dtype=np.float64), np.abs(kept).sum(dtype=np.float64)
            d = kept * np.float32(before / after) if rescale and before >= 1e-7 and after >= 1e-7 else kept
        deltas.append(d)
    if sign_election:
        return _elect(b, deltas, weights, scale)
    return b + np.float32(scale) * (np.float32(weights[0]) * deltas[0] + np.float32(weights[1]) * deltas[1])


def slerp(b, o, t, t_=0.5):  # type: ignore[no-untyped-def]
    def vectors(v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
        n0, n1 = np.linalg.norm(v0), np.linalg.norm(v1)
        u0 = v0 / n0 if n0 > 1e-8 else v0
        u1 = v1 / n1 if n1 > 1e-8 else v1
        cos = np.clip(np.sum(u0 * u1), -1.0, 1.0)
        if abs(cos) > 0.9995:
            return np.float32(1 - t_) * v0 + np.float32(t_) * v1
        theta = np.arccos(cos)
        return (np.sin(theta * (1 - t_)) * v0 + np.sin(theta * t_) * v1) / np.sin(theta)

    rows = [vectors(a, c) for a, c in zip(o.reshape(o.shape[0], -1), t.reshape(o.shape[0], -1), strict=True)]
    return np.stack(rows).reshape(o.shape).astype(np.float32)


REFERENCES: dict[str, Callable[..., np.ndarray]] = {
    "average": average,
    "task-arithmetic": task_arithmetic,
    "ties": ties,
    "slerp": slerp,
}
