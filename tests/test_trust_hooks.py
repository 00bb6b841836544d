"""Repository-local hooks only: a shared hooks directory (core.hooksPath) is never written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from theta.testing import GitRepo, clone

MODEL = "model.safetensors"
TEAM_HOOK = "#!/bin/sh\necho team hook ran >&2\ncat >/dev/null\n"


def shared_hooks(tmp_path: Path) -> Path:
    hooks = tmp_path / "team-hooks"
    hooks.mkdir()
    (hooks / "pre-push").write_text(TEAM_HOOK)
    (hooks / "pre-push").chmod(0o755)
    return hooks


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def advised_line(text: str, hook: str) -> str:
    match = re.search(rf"add this line .*?{hook}.*?: `(.+?)`$", text, re.MULTILINE)
    assert match, text
    return match.group(1)


def test_shared_hooks_are_never_written(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes) -> None:
    hooks = shared_hooks(tmp_path)
    before = snapshot(hooks)
    repo.git("config", "core.hooksPath", str(hooks))
    track = repo.theta("track", "*.safetensors")
    install = repo.theta("install", "--local")
    repo.write(MODEL, v1)
    add = repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "v1")
    assert snapshot(hooks) == before
    assert not list((repo.path / ".git" / "hooks").glob("*.theta-chained"))
    for output in (track.stderr, install.stdout, add.stderr):
        assert "core.hooksPath" in output and str(hooks / "pre-push") in output, output

    # the pushes of an unrelated repository using the same hooks still work
    other = GitRepo(tmp_path / "other", repo.env)
    subprocess.run(["git", "init", "-q", "-b", "main", str(other.path)], env=repo.env, check=True)
    other.git("config", "core.hooksPath", str(hooks))
    (other.path / "a.txt").write_text("a\n")
    other.commit_all("a")
    bare = tmp_path / "other.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], env=repo.env, check=True)
    push = other.git("push", bare.as_uri(), "main")
    assert "team hook ran" in push.stderr


def test_the_advised_line_makes_the_shared_hook_push_objects(
    repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes
) -> None:
    hooks = shared_hooks(tmp_path)
    repo.git("config", "core.hooksPath", str(hooks))
    track = repo.theta("track", "*.safetensors")
    shebang, rest = TEAM_HOOK.split("\n", 1)
    (hooks / "pre-push").write_text(f"{shebang}\n{advised_line(track.stderr, 'pre-push')}\n{rest}")
    (hooks / "post-commit").write_text(f"#!/bin/sh\n{advised_line(track.stderr, 'post-commit')}\n")
    (hooks / "post-commit").chmod(0o755)
    repo.write(MODEL, v1)
    add = repo.git("add", "-A")
    assert "core.hooksPath" not in add.stderr  # the shared hook calls Theta now: no more advice
    repo.git("commit", "-q", "-m", "v1")
    push = repo.git("push", "origin", "main")
    assert "theta: pushing" in push.stderr and "team hook ran" in push.stderr
    copy = clone(remote, tmp_path / "copy", repo.env)
    assert copy.read(MODEL) == v1
