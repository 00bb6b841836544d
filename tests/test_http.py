"""Push and clone through a real Git LFS server over HTTP on 127.0.0.1 (giftless)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lfs_server import giftless
from sample_models import edited

from theta.testing import GitRepo, clone

MODEL = "model.safetensors"

pytestmark = pytest.mark.http


def test_push_and_clone_over_http(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes) -> None:
    with giftless(tmp_path / "server") as base:
        repo.write(".lfsconfig", f"[lfs]\n\turl = {base}/theta/models.git/info/lfs\n".encode())
        repo.theta("track", "*.safetensors")
        repo.write(MODEL, v1)
        first = repo.commit_all("v1")
        v2 = edited(v1, "layers.3.mlp.weight")
        repo.write(MODEL, v2)
        repo.commit_all("v2")
        push = repo.git("push", "origin", "main")
        assert "theta: pushing" in push.stderr
        stored = {p.name for p in (tmp_path / "server" / "storage").rglob("*") if p.is_file()}
        local = {p.name for p in (repo.path / ".git" / "lfs" / "objects").rglob("*") if p.is_file()}
        assert local <= stored
        assert not (remote / "lfs").exists()  # everything went over HTTP, nothing to the file remote

        copy = clone(remote, tmp_path / "copy", repo.env)
        assert copy.read(MODEL) == v2
        copy.git("checkout", "-q", first)
        assert copy.read(MODEL) == v1
        assert copy.status() == ""
