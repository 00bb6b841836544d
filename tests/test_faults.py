"""Bad input and faults: a clear error, nothing staged, no half-written object, no wrong checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
from sample_models import checkpoint_bytes, edited

from theta.testing import GitRepo

MODEL = "model.safetensors"


def store_files(repo: GitRepo) -> list[Path]:
    root = repo.path / ".git" / "lfs"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_add_fails_cleanly(repo: GitRepo, data: bytes, *expected: str) -> None:
    before = store_files(repo)
    repo.write(MODEL, data)
    result = repo.git("add", MODEL, check=False)
    assert result.returncode != 0
    for text in (MODEL, *expected):
        assert text in result.stderr, result.stderr
    assert repo.git("diff", "--cached", "--name-only").stdout == ""
    lfs = repo.path / ".git" / "lfs"
    for path in set(store_files(repo)) - set(before):  # only whole objects, named by their content
        assert path.parent.parent.parent == lfs / "objects"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name


def test_wrong_magic_is_refused(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    repo.commit_all("track")
    assert_add_fails_cleanly(repo, b"this is not a checkpoint at all" * 10, "no installed checkpoint format")


def test_truncated_file_is_refused(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    repo.commit_all("track")
    assert_add_fails_cleanly(repo, v1[: len(v1) // 2], "truncated")


def test_header_that_lies_about_sizes_is_refused(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    repo.commit_all("track")
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 60]}}).encode()
    data = struct.pack("<Q", len(header)) + header + bytes(60)
    assert_add_fails_cleanly(repo, data, "lies about sizes")


def test_a_bad_file_fails_alone(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    repo.commit_all("track")
    repo.write("good.safetensors", v1)
    repo.write(MODEL, b"garbage" * 100)
    result = repo.git("add", "good.safetensors", MODEL, check=False)
    assert result.returncode != 0
    assert MODEL in result.stderr


def test_missing_object_at_checkout_names_file_parameter_and_oid(
    repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes
) -> None:
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, v1)
    repo.commit_all("v1")
    repo.git("push", "-q", "origin", "main")
    stored = json.loads(repo.blob(f"HEAD:{MODEL}"))
    name = "layers.1.attn.weight"
    oid = stored["parameters"][name]["steps"][0]["objects"]["value"]["oid"]
    (remote / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).unlink()
    result = subprocess.run(
        ["git", "clone", remote.as_uri(), str(tmp_path / "copy")], env=repo.env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert MODEL in result.stderr and oid in result.stderr and repr(name) in result.stderr
    target = tmp_path / "copy" / MODEL
    assert not target.exists() or (target.read_bytes() != v1[:0] and not target.read_bytes().startswith(v1[:8]))


def test_corrupted_object_is_never_decoded(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, v1)
    first = repo.commit_all("v1")
    repo.write(MODEL, edited(v1, "embed.weight"))
    repo.commit_all("v2")
    stored = json.loads(repo.blob(f"{first}:{MODEL}"))
    oid = stored["parameters"]["embed.weight"]["steps"][0]["objects"]["value"]["oid"]
    path = repo.path / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    corrupted = bytearray(path.read_bytes())
    corrupted[100] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(corrupted))
    result = repo.git("checkout", first, check=False)
    assert result.returncode != 0
    assert "corrupted" in result.stderr and MODEL in result.stderr and "'embed.weight'" in result.stderr
    target = repo.path / MODEL
    assert not target.exists() or target.read_bytes() != v1


def test_killed_filter_leaves_the_repository_usable(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    repo.commit_all("track")
    rng = np.random.default_rng(1)
    big = checkpoint_bytes({f"t{i}": rng.standard_normal(2_000_000).astype(np.float32) for i in range(24)})
    repo.write(MODEL, big)
    add = subprocess.Popen(["git", "add", MODEL], cwd=repo.path, env=repo.env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    killed = False
    objects = repo.path / ".git" / "lfs" / "objects"
    while time.monotonic() < deadline and add.poll() is None and not killed:
        if not objects.exists() or not any(p.is_file() for p in objects.rglob("*")):
            time.sleep(0.005)
            continue  # kill it mid-way: once it has stored its first object
        found = subprocess.run(["pgrep", "-f", "git-theta filter-process"], capture_output=True, text=True)
        for pid in found.stdout.split():
            if str(repo.path) in os.readlink(f"/proc/{pid}/cwd"):
                os.kill(int(pid), signal.SIGKILL)
                killed = True
        time.sleep(0.02)
    add.wait(timeout=60)
    assert killed and add.returncode != 0
    assert not (repo.path / ".git" / "index.lock").exists()
    assert repo.git("diff", "--cached", "--name-only").stdout == ""
    repo.git("fsck", "--no-progress")
    repo.git("add", MODEL)
    repo.git("commit", "-q", "-m", "v1")
    (repo.path / MODEL).unlink()
    repo.git("checkout", "--", MODEL)
    assert repo.read(MODEL) == big


def test_missing_format_plugin_names_the_distribution(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, v1)
    repo.write("notes.txt", b"hello\n")
    repo.commit_all("v1")
    (repo.path / MODEL).unlink()
    (repo.path / "notes.txt").unlink()
    env = dict(repo.env, THETA_LOAD_PLUGINS="dense")
    result = subprocess.run(["git", "checkout", "--", "."], cwd=repo.path, env=env, capture_output=True, text=True)
    assert "theta-format-safetensors" in result.stderr and MODEL in result.stderr
    assert (repo.path / "notes.txt").read_bytes() == b"hello\n"
    assert repo.read(MODEL) == repo.blob(f"HEAD:{MODEL}")  # the metadata, plainly not a checkpoint
    assert repo.status() == ""
    repo.theta("checkout")
    assert repo.read(MODEL) == v1
