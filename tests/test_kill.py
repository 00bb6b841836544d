"""Kill -9 survival: the filter during a clean and a smudge, the pre-push during a push.

Afterwards `git theta fsck` passes, nothing a killed process left behind stays, and the next
command succeeds with exact checkouts.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from sample_models import checkpoint_bytes

from theta.testing import GitRepo, clone

MODEL = "model.safetensors"


def big_safetensors(seed: int, tensors: int = 24, size: int = 2_000_000) -> bytes:
    rng = np.random.default_rng(seed)
    return checkpoint_bytes({f"t{i}": rng.standard_normal(size).astype(np.float32) for i in range(tensors)})


def big_torch(seed: int) -> bytes:
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(seed)
    state = {f"layer{i}.weight": torch.randn(2_000_000, generator=generator) for i in range(24)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below `pid`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                command = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found.append((child, command))
            todo.append(child)
    return found


def kill_when(proc: subprocess.Popen[bytes], marker: str, ready, timeout: float = 60) -> bool:  # type: ignore[no-untyped-def]
    """SIGKILL the descendant of `proc` whose command line has `marker` once `ready()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        targets = [pid for pid, command in descendants(proc.pid) if marker in command]
        if targets and ready():
            for pid in targets:
                os.kill(pid, signal.SIGKILL)
            return True
        time.sleep(0.01)
    return False


def stray_files(repo: GitRepo) -> list[Path]:
    dirs = [repo.path / ".git" / "lfs" / "tmp", repo.path / ".git" / "theta" / "tmp"]
    return [p for d in dirs if d.is_dir() for p in d.iterdir() if p.name.startswith("theta-")]


def objects_dir(repo: GitRepo) -> Path:
    return repo.path / ".git" / "lfs" / "objects"


def stored_count(repo: GitRepo) -> int:
    root = objects_dir(repo)
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def test_kill_during_the_clean_of_a_large_file(repo: GitRepo) -> None:
    path = "model.pt"
    repo.theta("track", "*.pt")
    repo.commit_all("track")
    data = big_torch(1)
    repo.write(path, data)
    add = subprocess.Popen(["git", "add", path], cwd=repo.path, env=repo.env, stderr=subprocess.PIPE)
    killed = kill_when(add, "filter-process", lambda: bool(stray_files(repo)))  # mid-way: while spooling
    add.wait(timeout=60)
    assert killed and add.returncode != 0
    assert stray_files(repo), "the killed clean left nothing behind: the test did not kill it mid-way"
    assert repo.git("diff", "--cached", "--name-only").stdout == ""
    repo.theta("fsck")
    assert not stray_files(repo)  # removed by the next command
    repo.git("add", path)
    repo.git("commit", "-q", "-m", "v1")
    repo.theta("fsck")
    (repo.path / path).unlink()
    repo.git("checkout", "--", path)
    assert repo.read(path) == data


def test_kill_during_a_smudge(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    v1, v2 = big_safetensors(1), big_safetensors(2)
    repo.write(MODEL, v1)
    first = repo.commit_all("v1")
    repo.write(MODEL, v2)
    repo.commit_all("v2")
    checkout = subprocess.Popen(["git", "checkout", "-q", first], cwd=repo.path, env=repo.env, stderr=subprocess.PIPE)
    started = time.monotonic()
    killed = kill_when(checkout, "filter-process", lambda: time.monotonic() - started > 0.3)
    checkout.wait(timeout=60)
    assert killed and checkout.returncode != 0
    repo.theta("fsck", "--all")
    repo.git("checkout", "-q", "-f", first)
    assert repo.read(MODEL) == v1
    repo.git("checkout", "-q", "-f", "main")
    assert repo.read(MODEL) == v2
    assert repo.status() == ""
    assert not stray_files(repo)


def test_kill_the_pre_push_during_a_push(repo: GitRepo, remote: Path, tmp_path: Path) -> None:
    repo.theta("track", "*.safetensors")
    v1 = big_safetensors(3, tensors=32)
    repo.write(MODEL, v1)
    repo.commit_all("v1")
    push = subprocess.Popen(["git", "push", "origin", "main"], cwd=repo.path, env=repo.env, stderr=subprocess.PIPE)
    started = time.monotonic()
    killed = kill_when(push, "git-theta pre-push", lambda: time.monotonic() - started > 0.2)
    push.wait(timeout=60)
    assert killed and push.returncode != 0
    assert repo.git("ls-remote", "origin").stdout == ""  # no ref names a commit whose objects may be missing
    repo.theta("fsck")
    repo.git("push", "origin", "main")
    repo.theta("fsck", "--remote")
    copy = clone(remote, tmp_path / "copy", repo.env)
    assert copy.read(MODEL) == v1
    assert copy.status() == ""
