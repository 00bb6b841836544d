"""Incremental updates end to end: automatic choice, chains and their cap, side-loaded update
data, history rewrites and clones across incremental commits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load, save

from theta.testing import GitRepo, clone

MODEL = "model.safetensors"


def model(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w": rng.standard_normal((256, 128)).astype(np.float32),
        "ff": rng.standard_normal((512, 128)).astype(np.float32),
        "bias": rng.standard_normal(128).astype(np.float32),
    }


def nudged(weights: dict[str, np.ndarray], name: str, index: int) -> dict[str, np.ndarray]:
    out = {k: v.copy() for k, v in weights.items()}
    out[name].reshape(-1)[index] += 1.0
    return out


def steps(repo: GitRepo, rev: str, name: str) -> list[str]:
    stored = json.loads(repo.blob(f"{rev}:{MODEL}"))
    return [step["update"] for step in stored["parameters"][name]["steps"]]


def commit(repo: GitRepo, weights: dict[str, np.ndarray], message: str) -> tuple[str, bytes]:
    data = save(weights)
    repo.write(MODEL, data)
    return repo.commit_all(message), data


def test_automatic_choice_per_kind_of_change(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    base = model()
    commit(repo, base, "v1")
    changed = {k: v.copy() for k, v in base.items()}
    changed["w"].reshape(-1)[::97] += 0.5  # scattered: sparse
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((8, 128)).astype(np.float32), rng.standard_normal((512, 8)).astype(np.float32)
    changed["ff"] = base["ff"] + 0.01 * (b @ a)  # rank 8: low-rank
    changed["bias"] = rng.standard_normal(128).astype(np.float32)  # everything: dense
    _, data = commit(repo, changed, "v2")
    assert steps(repo, "HEAD", "w") == ["dense", "sparse"]
    assert steps(repo, "HEAD", "ff") == ["dense", "low-rank"]
    assert steps(repo, "HEAD", "bias") == ["dense"]
    (repo.path / MODEL).unlink()
    repo.git("checkout", "--", MODEL)
    assert repo.read(MODEL) == data


def test_chain_is_capped(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    repo.git("config", "theta.maxChainLength", "2")
    weights = model()
    versions = [commit(repo, weights, "v0")]
    for i in range(1, 5):
        weights = nudged(weights, "w", i * 31)
        versions.append(commit(repo, weights, f"v{i}"))
    assert [len(steps(repo, rev, "w")) for rev, _ in versions] == [1, 2, 3, 1, 2]
    for rev, data in versions:
        repo.git("checkout", "-q", rev)
        assert repo.read(MODEL) == data


def test_side_loaded_lora_factors(repo: GitRepo, tmp_path: Path) -> None:
    repo.theta("track", "*.safetensors")
    base = model()
    commit(repo, base, "v1")
    rng = np.random.default_rng(7)
    lora_a = rng.standard_normal((4, 128)).astype(np.float32) * 0.1
    lora_b = rng.standard_normal((256, 4)).astype(np.float32) * 0.1
    tuned = dict(base, w=base["w"] + lora_b @ lora_a)
    update_data = tmp_path / "adapter.safetensors"
    update_data.write_bytes(save({"w.lora_a": lora_a, "w.lora_b": lora_b}))
    data = save(tuned)
    repo.write(MODEL, data)
    repo.theta("add", MODEL, "--update-type", "low-rank", "--update-data", str(update_data))
    repo.git("commit", "-q", "-m", "lora")
    assert steps(repo, "HEAD", "w") == ["dense", "low-rank"]
    stored = json.loads(repo.blob(f"HEAD:{MODEL}"))
    added = sum(o["size"] for o in stored["parameters"]["w"]["steps"][-1]["objects"].values())
    assert added < base["w"].nbytes / 4
    (repo.path / MODEL).unlink()
    repo.git("checkout", "--", MODEL)
    assert repo.read(MODEL) == data


def test_missing_update_data_is_a_clear_error(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    commit(repo, model(), "v1")
    result = repo.theta("add", MODEL, "--update-data", "nowhere.safetensors", check=False)
    assert result.returncode != 0 and "nowhere.safetensors" in result.stderr


def test_rebase_and_cherry_pick_across_incremental_commits(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    repo.write("notes.txt", b"start\n")
    weights = model()
    commit(repo, weights, "v1")
    repo.git("checkout", "-q", "-b", "feature")
    weights = nudged(weights, "w", 3)
    commit(repo, weights, "v2")
    weights = nudged(weights, "w", 5)
    v3, v3_data = commit(repo, weights, "v3")
    assert steps(repo, v3, "w") == ["dense", "sparse", "sparse"]
    repo.git("checkout", "-q", "main")
    repo.write("notes.txt", b"main moved\n")
    repo.commit_all("notes")
    repo.git("checkout", "-q", "-b", "picked")
    repo.git("cherry-pick", "main..feature")
    assert load(repo.read(MODEL))["w"].tobytes() == load(v3_data)["w"].tobytes()
    assert steps(repo, "HEAD", "w") == ["dense", "sparse", "sparse"]
    assert repo.status() == ""
    repo.git("checkout", "-q", "feature")
    repo.git("rebase", "-q", "main")
    assert repo.read(MODEL) == v3_data
    repo.git("rebase", "-q", "--exec", "true", "HEAD~2")
    assert repo.status() == ""


def test_clone_checks_out_oldest_and_newest(repo: GitRepo, remote: Path, tmp_path: Path) -> None:
    repo.theta("track", "*.safetensors")
    weights = model()
    history = [commit(repo, weights, "v0")]
    for i in range(1, 4):
        weights = nudged(weights, "ff", i * 101)
        history.append(commit(repo, weights, f"v{i}"))
    repo.git("push", "-q", "origin", "main")
    copy = clone(remote, tmp_path / "copy", repo.env)
    assert copy.read(MODEL) == history[-1][1]
    copy.git("checkout", "-q", history[0][0])
    assert copy.read(MODEL) == history[0][1]
