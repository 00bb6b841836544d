"""Theta beside plain Git LFS in one repository: git-lfs's hook logic always runs, whatever came first."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from theta.testing import GitRepo, clone

MODEL = "model.safetensors"
DATA = "table.dat"
PAYLOAD = b"plain Git LFS content\n" * 1000


def remote_objects(remote: Path) -> set[str]:
    root = remote / "lfs" / "objects"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def commit_both(repo: GitRepo, v1: bytes) -> None:
    repo.write(MODEL, v1)
    repo.write(DATA, PAYLOAD)
    repo.commit_all("model and data")


def assert_both_arrive(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes) -> None:
    repo.git("push", "origin", "main")
    stored = remote_objects(remote)
    assert hashlib.sha256(PAYLOAD).hexdigest() in stored, "the plain Git LFS object was not pushed"
    assert len(stored) > 1, "Theta's objects were not pushed"
    copy = clone(remote, tmp_path / "copy", repo.env)
    assert copy.read(DATA) == PAYLOAD
    assert copy.read(MODEL) == v1
    assert copy.status() == ""


def test_lfs_files_are_pushed_when_theta_hooks_came_first(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes):
    repo.theta("track", "*.safetensors")
    repo.git("lfs", "track", "*.dat")
    commit_both(repo, v1)
    assert_both_arrive(repo, remote, tmp_path, v1)


def test_lfs_files_are_pushed_when_lfs_hooks_came_first(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes):
    repo.git("lfs", "install", "--local")
    repo.git("lfs", "track", "*.dat")
    repo.theta("install", "--local")
    repo.theta("track", "*.safetensors")
    commit_both(repo, v1)
    assert_both_arrive(repo, remote, tmp_path, v1)


def test_lfs_hooks_forced_over_theta_hooks_are_chained_again(
    repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes
) -> None:
    repo.theta("track", "*.safetensors")
    repo.git("lfs", "update", "--force")  # git-lfs's hooks replace Theta's
    repo.git("lfs", "track", "*.dat")
    commit_both(repo, v1)  # the clean puts Theta's hooks back, keeping git-lfs's behind them
    assert "theta: managed hook" in (repo.path / ".git" / "hooks" / "pre-push").read_text()
    assert_both_arrive(repo, remote, tmp_path, v1)


@pytest.mark.parametrize("theta_first", [True, False])
def test_lfs_post_commit_logic_runs(repo: GitRepo, theta_first: bool) -> None:
    # git-lfs's post-commit hook makes files it may lock read-only once they are committed
    if theta_first:
        repo.theta("track", "*.safetensors")
    else:
        repo.git("lfs", "install", "--local")
        repo.theta("install", "--local")
    attributes = repo.path / ".gitattributes"
    repo.write(".gitattributes", (attributes.read_bytes() if attributes.exists() else b"") + b"*.bin lockable\n")
    repo.commit_all("lockable pattern")
    repo.write("weights.bin", b"locked\n")
    repo.commit_all("lockable file")
    assert not (repo.path / "weights.bin").stat().st_mode & stat.S_IWUSR


def test_lfs_post_checkout_and_post_merge_hooks_exist(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    hooks = repo.path / ".git" / "hooks"
    for name in ("pre-push", "post-checkout", "post-commit", "post-merge"):
        text = (hooks / name).read_text()
        assert "theta: managed hook" in text and f"git lfs {name}" in text, name


def test_install_says_how_to_set_up_git_lfs_here(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    result = repo.theta("install", "--local")
    assert "git lfs install --skip-repo" in result.stdout
    refused = repo.git("lfs", "install", check=False)  # git-lfs refuses to touch hooks it did not write
    assert "Hook already exists" in refused.stderr + refused.stdout
    repo.git("lfs", "install", "--skip-repo")  # what Theta says to run instead
    repo.git("lfs", "track", "*.dat")
    commit_both(repo, v1)
    assert_both_arrive(repo, remote, tmp_path, v1)


def test_an_lfs_hook_is_not_run_twice(repo: GitRepo, v1: bytes) -> None:
    repo.git("lfs", "install", "--local")
    repo.theta("install", "--local")
    hooks = repo.path / ".git" / "hooks"
    log = repo.path.parent / "lfs-runs"
    chained = hooks / "pre-push.theta-chained"
    chained.write_text(chained.read_text().replace("git lfs pre-push", f"echo run >> {log}; git lfs pre-push"))
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, v1)
    repo.commit_all("v1")
    repo.git("push", "origin", "main")
    assert log.read_text() == "run\n"
