"""Merges with a remote: a fetched branch whose objects are not local, and a merge commit pushed,
cloned fresh and checked out exactly; merges of branches that hold incremental updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from merge_support import MODEL, commit, load, make_model, merge, save, stored, task_arithmetic, tuned, write_policy

from theta.testing import GitRepo, clone


def local_objects(repo: GitRepo) -> set[str]:
    return {p.name for p in (repo.path / ".git" / "lfs" / "objects").rglob("*") if p.is_file()}


def test_merging_a_fetched_branch_fetches_its_objects_in_one_batch(repo: GitRepo, remote: Path, tmp_path: Path) -> None:
    base = make_model()
    repo.theta("track", "*.safetensors")
    write_policy(repo, 'version = 1\ndefault = { strategy = "average" }\n')
    commit(repo, {MODEL: save(base)}, "base")
    repo.git("push", "-q", "origin", "main")

    other = clone(remote, tmp_path / "other", repo.env)
    theirs = tuned(base, ["embed.weight", "layers.0.attn.weight", "head.bias"], seed=2)
    other.git("checkout", "-q", "-b", "feature")
    commit(other, {MODEL: save(theirs)}, "feature")
    other.git("push", "-q", "origin", "feature")

    ours = tuned(base, ["embed.weight"], seed=1)
    commit(repo, {MODEL: save(ours)}, "ours")
    repo.git("fetch", "-q", "origin")
    theirs_meta = stored(repo, f"origin/feature:{MODEL}")["parameters"]
    wanted = {
        record["oid"]
        for name in ("embed.weight", "layers.0.attn.weight")
        for step in theirs_meta[name]["steps"]
        for record in step["objects"].values()
    }
    assert not wanted & local_objects(repo)  # fetching the branch brought metadata only

    result = merge(repo, "origin/feature")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    merged = load(repo.read(MODEL))
    assert np.array_equal(
        merged["embed.weight"], np.float32(0.5) * ours["embed.weight"] + np.float32(0.5) * theirs["embed.weight"]
    )
    assert np.array_equal(merged["layers.0.attn.weight"], theirs["layers.0.attn.weight"])
    assert np.array_equal(merged["head.bias"], theirs["head.bias"])
    assert wanted <= local_objects(repo)
    assert repo.status() == ""


def test_a_merge_commit_pushes_and_checks_out_exactly_in_a_fresh_clone(
    repo: GitRepo, remote: Path, tmp_path: Path
) -> None:
    base = make_model()
    repo.theta("track", "*.safetensors")
    write_policy(repo, 'version = 1\n[[rules]]\nparams = ["*"]\nstrategy = "ties"\noptions = { density = 0.2 }\n')
    commit(repo, {MODEL: save(base)}, "base")
    repo.git("checkout", "-q", "-b", "theirs")
    theirs = tuned(base, ["embed.weight", "layers.1.attn.weight"], seed=2)
    commit(repo, {MODEL: save(theirs)}, "theirs")
    repo.git("checkout", "-q", "main")
    commit(repo, {MODEL: save(tuned(base, ["embed.weight", "head.bias"], seed=1))}, "ours")
    assert merge(repo).returncode == 0
    merged_bytes = repo.read(MODEL)
    push = repo.git("push", "-q", "origin", "main")
    assert "theta: pushing" in push.stderr

    fresh = clone(remote, tmp_path / "fresh", repo.env)
    assert fresh.read(MODEL) == merged_bytes
    assert fresh.status() == ""
    assert stored(fresh)["parameters"]["embed.weight"]["merge"]["strategy"] == "ties"
    fresh.git("checkout", "-q", "HEAD^2")
    assert load(fresh.read(MODEL))["layers.1.attn.weight"].tobytes() == theirs["layers.1.attn.weight"].tobytes()


def sparse_edit(model: dict[str, np.ndarray], name: str, seed: int, count: int = 5) -> dict[str, np.ndarray]:
    """`model` with `count` elements of `name` changed: an edit stored as a small update."""
    rng = np.random.default_rng(seed)
    out = dict(model)
    tensor = model[name].copy()
    flat = tensor.reshape(-1)
    flat[rng.choice(flat.size, count, replace=False)] += np.float32(0.5)
    out[name] = tensor
    return out


def test_branches_holding_incremental_updates_merge_and_store_an_update(repo: GitRepo) -> None:
    base = make_model(width=64)
    repo.theta("track", "*.safetensors")
    write_policy(repo, 'version = 1\ndefault = { strategy = "task-arithmetic" }\n')
    commit(repo, {MODEL: save(base)}, "base")
    repo.git("checkout", "-q", "-b", "theirs")
    theirs = sparse_edit(base, "embed.weight", seed=2)
    commit(repo, {MODEL: save(theirs)}, "theirs 1")
    theirs = sparse_edit(theirs, "embed.weight", seed=3)
    commit(repo, {MODEL: save(theirs)}, "theirs 2")
    repo.git("checkout", "-q", "main")
    ours = sparse_edit(base, "embed.weight", seed=4)
    commit(repo, {MODEL: save(ours)}, "ours 1")
    assert len(stored(repo)["parameters"]["embed.weight"]["steps"]) == 2  # ours holds an update
    assert len(stored(repo, f"theirs:{MODEL}")["parameters"]["embed.weight"]["steps"]) == 3

    result = merge(repo)
    assert result.returncode == 0, result.stderr
    merged = load(repo.read(MODEL))
    expected = task_arithmetic(base["embed.weight"], ours["embed.weight"], theirs["embed.weight"])
    assert np.array_equal(merged["embed.weight"], expected)
    entry = stored(repo)["parameters"]["embed.weight"]
    assert entry["merge"]["strategy"] == "task-arithmetic"
    # theirs is the closest version (it lacks one sparse edit; ours lacks two): an update on top of it
    theirs_steps = stored(repo, f"theirs:{MODEL}")["parameters"]["embed.weight"]["steps"]
    assert entry["steps"][:-1] == theirs_steps and entry["steps"][-1]["update"] != "dense"
    assert repo.status() == ""


def test_dare_gives_the_same_bits_in_two_merges(repo: GitRepo, remote: Path, tmp_path: Path) -> None:
    base = make_model()
    repo.theta("track", "*.safetensors")
    write_policy(repo, 'version = 1\ndefault = { strategy = "dare", options = { density = 0.3, seed = 5 } }\n')
    commit(repo, {MODEL: save(base)}, "base")
    repo.git("checkout", "-q", "-b", "theirs")
    commit(repo, {MODEL: save(tuned(base, ["embed.weight", "head.bias"], seed=2))}, "theirs")
    repo.git("checkout", "-q", "main")
    commit(repo, {MODEL: save(tuned(base, ["embed.weight", "head.bias"], seed=1))}, "ours")
    repo.git("push", "-q", "origin", "main", "theirs")
    assert merge(repo).returncode == 0
    first = repo.blob(f"HEAD:{MODEL}")

    again = clone(remote, tmp_path / "again", repo.env)
    assert merge(again, "origin/theirs").returncode == 0
    assert again.blob(f"HEAD:{MODEL}") == first
    assert stored(again)["parameters"]["embed.weight"]["merge"] == {
        "strategy": "dare",
        "options": {
            "density": 0.3,
            "rescale": True,
            "sign_election": False,
            "seed": 5,
            "scale": 1.0,
            "weights": [1.0, 1.0],
        },
    }
