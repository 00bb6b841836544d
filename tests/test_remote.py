"""Push, clone and pull through a bare remote reached by a file:// URL."""

from __future__ import annotations

from pathlib import Path

from sample_models import edited

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
