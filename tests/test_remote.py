"""Push, clone and pull through a bare remote reached by a file:// URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sample_models import checkpoint_bytes, edited, make_model

from theta.git import lfs
from theta.metadata import loads
from theta.testing import GitRepo, clone

MODEL = "model.safetensors"


def lfs_objects(git_dir: Path) -> set[str]:
    return {p.name for p in (git_dir / "lfs" / "objects").rglob("*") if p.is_file()}


def test_push_then_fresh_clone_checks_out_every_version(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, v1)
    first = repo.commit_all("v1")
    v2 = edited(v1, "layers.0.mlp.weight")
    repo.write(MODEL, v2)
    repo.commit_all("v2")
    push = repo.git("push", "-q", "origin", "main")
    assert "theta: pushing" in push.stderr
    assert lfs_objects(remote) == lfs_objects(repo.path / ".git")

    copy = clone(remote, tmp_path / "copy", repo.env)
    assert copy.read(MODEL) == v2
    assert copy.status() == ""
    copy.git("checkout", "-q", first)
    assert copy.read(MODEL) == v1
    assert (copy.path / ".git" / "hooks" / "pre-push").exists()


def test_pull_brings_new_versions(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, v1)
    repo.commit_all("v1")
    repo.git("push", "-q", "origin", "main")
    copy = clone(remote, tmp_path / "copy", repo.env)
    v2 = edited(v1, "embed.weight")
    repo.write(MODEL, v2)
    repo.commit_all("v2")
    repo.git("push", "-q", "origin", "main")
    copy.git("pull", "-q", "--ff-only")
    assert copy.read(MODEL) == v2
    assert copy.status() == ""


def test_push_from_a_clone_sends_only_new_objects(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, v1)
    repo.commit_all("v1")
    repo.git("push", "-q", "origin", "main")
    copy = clone(remote, tmp_path / "copy", repo.env)
    copy.write(MODEL, edited(v1, "layers.2.norm.bias"))
    copy.commit_all("v2 from the clone")
    before = lfs_objects(remote)
    result = copy.git("push", "origin", "main")
    assert "theta: pushing" in result.stderr
    assert 1 <= len(lfs_objects(remote) - before) <= 2  # the changed tensor, whole or as an update


def test_git_lfs_prune_cannot_lose_theta_objects(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, v1)
    first = repo.commit_all("v1")
    v2 = edited(v1, "embed.weight")
    repo.write(MODEL, v2)
    repo.commit_all("v2")
    repo.git("lfs", "prune")  # no pointer names Theta's objects: git-lfs deletes its copies of them
    repo.git("checkout", "-q", first)
    assert repo.read(MODEL) == v1
    repo.git("checkout", "-q", "main")
    assert repo.read(MODEL) == v2
    result = repo.git("push", "origin", "main")
    assert "theta: pushing" in result.stderr


def test_objects_used_as_they_arrive_come_in_order_of_need(
    repo: GitRepo, remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git-lfs lands one session's objects in no particular order: a checkout, which writes the
    tensors in order as their objects arrive, gets them in waves, each after the one before."""
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, checkpoint_bytes(make_model(layers=12)))
    repo.commit_all("v1")
    repo.git("push", "-q", "origin", "main")
    copy = clone(remote, tmp_path / "copy", repo.env)
    objects = [(oid, use.size) for oid, use in loads(copy.blob(f"HEAD:{MODEL}"), MODEL).objects().items()]
    for stored in (copy.path / ".git" / "lfs" / "objects").rglob("*"):
        if stored.is_file():
            stored.unlink()
    wave_bytes = sum(size for _, size in objects) // 5
    monkeypatch.setattr(lfs, "FIRST_WAVE_BYTES", wave_bytes)
    monkeypatch.setattr(lfs, "LARGEST_WAVE_BYTES", wave_bytes)
    for key, value in copy.env.items():
        monkeypatch.setenv(key, value)
    wave_of = {oid: index for index, wave in enumerate(lfs.waves(objects)) for oid, _ in wave}
    assert len(set(wave_of.values())) >= 5 and len(objects) >= 20

    landed: list[str] = []
    assert lfs.fetch_objects(objects, MODEL, cwd=copy.path, arrived=landed.append) == []
    assert sorted(landed) == sorted(oid for oid, _ in objects)
    assert [wave_of[oid] for oid in landed] == sorted(wave_of[oid] for oid in landed)
    assert lfs_objects(copy.path / ".git") == {oid for oid, _ in objects}
