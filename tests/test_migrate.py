"""Moving from Git LFS: track warns, migrate converts without rewriting history, both keep working side by side."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from sample_models import checkpoint_bytes, edited, make_model

from theta.testing import GitRepo, clone, git_theta_command

MODEL = "models/model.safetensors"
DATA = "table.dat"
PAYLOAD = b"plain Git LFS content\n" * 500


@pytest.fixture
def lfs_repo(repo: GitRepo, v1: bytes) -> GitRepo:
    """A repository whose checkpoints and data were committed with plain Git LFS, and pushed."""
    repo.git("lfs", "install", "--local")
    repo.git("lfs", "track", "*.safetensors")
    repo.git("lfs", "track", "*.dat")
    repo.write(MODEL, v1)
    repo.write(DATA, PAYLOAD)
    repo.commit_all("checkpoint and data in Git LFS")
    assert repo.blob(f"HEAD:{MODEL}").startswith(b"version https://git-lfs.github.com/spec/v1")
    repo.git("push", "-q", "origin", "main")
    return repo


def test_track_warns_when_git_lfs_has_the_pattern(lfs_repo: GitRepo, v1: bytes) -> None:
    result = lfs_repo.theta("track", "*.safetensors")
    assert "theta: warning: '*.safetensors' is also tracked by Git LFS" in result.stderr
    assert "`*.safetensors filter=lfs diff=lfs merge=lfs -text`" in result.stderr
    assert f"1 file(s) are still committed as Git LFS pointers ({MODEL})" in result.stderr
    assert "run `git theta migrate '*.safetensors'`" in result.stderr
    quiet = lfs_repo.theta("track", "*.pt")
    assert "warning" not in quiet.stderr
    lfs_repo.git("add", "--renormalize", MODEL)  # as git compares it: the file Git LFS committed, unchanged
    assert lfs_repo.blob(f":{MODEL}").startswith(b"version https://git-lfs"), "it stays Git LFS's until migrated"
    lfs_repo.write(MODEL, edited(v1, "layers.0.attn.weight"))
    lfs_repo.git("add", MODEL)
    assert json.loads(lfs_repo.blob(f":{MODEL}"))["format"] == "safetensors", "a changed file is Theta's"


def test_track_from_a_subdirectory_finds_the_pointers_its_pattern_matches(lfs_repo: GitRepo) -> None:
    result = subprocess.run(
        [git_theta_command(), "track", "models/*.safetensors"],
        cwd=lfs_repo.path / "models", env=lfs_repo.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"1 file(s) are still committed as Git LFS pointers ({MODEL})" in result.stderr


def test_migrate_converts_the_working_tree_and_keeps_history(
    lfs_repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes
) -> None:
    result = lfs_repo.theta("migrate", "*.safetensors")
    lines = result.stdout.splitlines()
    assert lines[0] == "theta: removed from .gitattributes: `*.safetensors filter=lfs diff=lfs merge=lfs -text`"
    assert any(
        line.startswith(f"theta: {MODEL}: a Git LFS object of") and "is now Theta metadata" in line for line in lines
    )
    attributes = lfs_repo.read(".gitattributes").decode()
    assert "*.dat filter=lfs" in attributes, "other Git LFS patterns stay"
    assert "*.safetensors filter=lfs" not in attributes and "*.safetensors filter=theta" in attributes
    staged = json.loads(lfs_repo.blob(f":{MODEL}"))
    assert sorted(staged["parameters"]) == sorted(make_model())
    assert lfs_repo.read(MODEL) == v1
    lfs_repo.git("commit", "-q", "-m", "Track checkpoints with Theta")
    assert lfs_repo.status() == ""

    lfs_repo.git("checkout", "-q", "HEAD~1")  # history is as it was: that commit's model is a Git LFS file
    assert lfs_repo.blob(f"HEAD:{MODEL}").startswith(b"version https://git-lfs")
    assert lfs_repo.read(MODEL) == v1 and lfs_repo.read(DATA) == PAYLOAD
    later = time.time() + 100  # stat data that no longer matches: git compares the content, through Theta's filter
    os.utime(lfs_repo.path / MODEL, (later, later))
    lfs_repo.git("checkout", "-q", "main")  # not "your local changes would be overwritten"
    lfs_repo.run("sh", "-c", "git checkout -q HEAD~1 && git checkout -q main")  # racily clean: compared by content
    assert lfs_repo.read(MODEL) == v1

    v2 = edited(v1, "layers.1.attn.weight")
    lfs_repo.write(MODEL, v2)
    lfs_repo.commit_all("fine-tuned")
    steps = json.loads(lfs_repo.blob(f"HEAD:{MODEL}"))["parameters"]["layers.1.attn.weight"]["steps"]
    assert len(steps) == 2, "the fine-tune is stored as an update of the migrated version"
    lfs_repo.git("push", "-q", "origin", "main")

    copy = clone(remote, tmp_path / "copy", lfs_repo.env)
    assert copy.read(MODEL) == v2 and copy.read(DATA) == PAYLOAD
    copy.git("checkout", "-q", "HEAD~2")
    assert copy.read(MODEL) == v1, "the Git LFS version checks out in a fresh clone"
    copy.git("checkout", "-q", "main")
    assert copy.read(MODEL) == v2 and copy.status() == ""


def test_migrate_fetches_content_a_lazy_clone_left_as_pointers(
    lfs_repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes
) -> None:
    env = {**lfs_repo.env, "GIT_LFS_SKIP_SMUDGE": "1"}
    lazy = clone(remote, tmp_path / "lazy", env)
    lazy.env = lfs_repo.env
    assert lazy.read(MODEL).startswith(b"version https://git-lfs")
    result = lazy.theta("migrate", "*.safetensors")
    assert "cleaned from its Git LFS object" in result.stdout
    assert lazy.read(MODEL) == v1
    assert json.loads(lazy.blob(f":{MODEL}"))["format"] == "safetensors"


def test_migrate_with_nothing_committed_in_lfs_only_tracks(repo: GitRepo) -> None:
    result = repo.theta("migrate", "*.safetensors")
    assert "nothing else to convert" in result.stdout
    assert "*.safetensors filter=theta" in repo.read(".gitattributes").decode()
    repo.write("m.safetensors", checkpoint_bytes(make_model()))
    repo.commit_all("v1")
    assert json.loads(repo.blob("HEAD:m.safetensors"))["format"] == "safetensors"
