"""Never spread a bad copy: objects verified before a push, re-adding repairs, fetch says what did not arrive."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from sample_models import edited

from theta.testing import GitRepo

MODEL = "model.safetensors"
NAME = "layers.1.attn.weight"
OTHER = "layers.2.mlp.weight"


def oid_of(repo: GitRepo, rev: str, name: str) -> str:
    stored = json.loads(repo.blob(f"{rev}:{MODEL}"))
    return stored["parameters"][name]["steps"][0]["objects"]["value"]["oid"]


def object_path(git_dir: Path, oid: str) -> Path:
    return git_dir / "lfs" / "objects" / oid[:2] / oid[2:4] / oid


def local_names(repo: GitRepo, oid: str) -> list[Path]:
    git_dir = repo.path / ".git"
    return [object_path(git_dir, oid), git_dir / "theta" / "objects" / oid[:2] / oid[2:4] / oid]


def corrupt(path: Path, in_place: bool = True) -> None:
    """Damage one byte; in place, every hard-linked name sees it, else only this name does."""
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    if not in_place:
        path.unlink()  # git-lfs's file:// transfer hard-links a pushed object to the local copy
    elif path.exists():
        path.chmod(0o644)
    path.write_bytes(bytes(data))


def sound(path: Path) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == path.name


def committed(repo: GitRepo, v1: bytes) -> str:
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, v1)
    repo.commit_all("v1")
    return oid_of(repo, "HEAD", NAME)


def re_add(repo: GitRepo, data: bytes) -> None:
    (repo.path / MODEL).unlink()
    repo.write(MODEL, data)
    repo.git("add", MODEL)


def test_re_adding_rewrites_a_corrupt_object(repo: GitRepo, remote: Path, v1: bytes) -> None:
    oid = committed(repo, v1)
    corrupt(local_names(repo, oid)[0])
    assert not any(sound(p) for p in local_names(repo, oid))
    re_add(repo, v1)
    assert all(sound(p) for p in local_names(repo, oid))
    repo.git("push", "origin", "main")
    assert sound(object_path(remote, oid))


def test_re_adding_restores_a_deleted_object(repo: GitRepo, remote: Path, v1: bytes) -> None:
    oid = committed(repo, v1)
    for path in local_names(repo, oid):
        path.unlink()
    re_add(repo, v1)
    assert all(sound(p) for p in local_names(repo, oid))
    repo.git("push", "origin", "main")
    assert sound(object_path(remote, oid))


def test_re_adding_does_not_reuse_a_chain_with_a_missing_object(repo: GitRepo, remote: Path, v1: bytes) -> None:
    committed(repo, v1)
    v2 = edited(v1, NAME)
    repo.write(MODEL, v2)
    repo.commit_all("v2")
    steps = json.loads(repo.blob(f"HEAD:{MODEL}"))["parameters"][NAME]["steps"]
    assert len(steps) == 2  # stored as an update of v1
    update_oid = next(iter(steps[1]["objects"].values()))["oid"]
    for path in local_names(repo, update_oid):
        path.unlink(missing_ok=True)
    re_add(repo, v2)
    staged = json.loads(repo.blob(f":{MODEL}"))
    needed = {o["oid"] for p in staged["parameters"].values() for s in p["steps"] for o in s["objects"].values()}
    assert update_oid not in needed
    assert all(sound(local_names(repo, oid)[0]) for oid in needed)
    repo.git("commit", "-q", "-m", "v2 again")
    (repo.path / MODEL).unlink()
    repo.git("checkout", "--", MODEL)
    assert repo.read(MODEL) == v2
    # the commit whose object is lost cannot be pushed: the push says so instead of spreading it
    result = repo.git("push", "origin", "main", check=False)
    assert result.returncode != 0 and update_oid in result.stderr


def test_push_refuses_a_corrupt_object(repo: GitRepo, remote: Path, v1: bytes) -> None:
    oid = committed(repo, v1)
    corrupt(local_names(repo, oid)[0])
    result = repo.git("push", "origin", "main", check=False)
    assert result.returncode != 0
    for text in (MODEL, repr(NAME), oid, "corrupt", "git add"):
        assert text in result.stderr, (text, result.stderr)
    assert not object_path(remote, oid).exists()
    assert repo.git("ls-remote", "origin").stdout == ""  # nothing was pushed at all


def test_push_refuses_a_missing_object_with_advice_that_works(repo: GitRepo, remote: Path, v1: bytes) -> None:
    oid = committed(repo, v1)
    for path in local_names(repo, oid):
        path.unlink()
    result = repo.git("push", "origin", "main", check=False)
    assert result.returncode != 0
    assert MODEL in result.stderr and repr(NAME) in result.stderr and oid in result.stderr
    re_add(repo, v1)  # what the message advises
    repo.git("push", "origin", "main")
    assert sound(object_path(remote, oid))


def server_damaged_clone(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes) -> tuple[GitRepo, str, str]:
    committed(repo, v1)
    repo.git("push", "-q", "origin", "main")
    deleted, damaged = oid_of(repo, "HEAD", NAME), oid_of(repo, "HEAD", OTHER)
    object_path(remote, deleted).unlink()
    corrupt(object_path(remote, damaged), in_place=False)
    subprocess.run(
        ["git", "clone", "-q", "--no-checkout", remote.as_uri(), str(tmp_path / "copy")],
        env=repo.env,
        check=True,
        capture_output=True,
    )
    return GitRepo(tmp_path / "copy", repo.env), deleted, damaged


def test_fetch_fails_naming_what_did_not_arrive(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes) -> None:
    copy, deleted, damaged = server_damaged_clone(repo, remote, tmp_path, v1)
    result = copy.theta("fetch", "main", check=False)
    assert result.returncode != 0
    assert deleted in result.stderr and damaged in result.stderr, result.stderr
    assert repr(NAME) in result.stderr and repr(OTHER) in result.stderr
    assert not object_path(copy.path / ".git", damaged).exists()


def test_checkout_says_corrupt_on_the_server_apart_from_missing(
    repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes
) -> None:
    copy, deleted, damaged = server_damaged_clone(repo, remote, tmp_path, v1)
    result = copy.git("checkout", "main", check=False)
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    about_damaged = [line for line in lines if damaged in line and MODEL in line]
    assert any("corrupt on the remote" in line for line in about_damaged), result.stderr
    assert not any("neither in the local store nor on the remote" in line for line in about_damaged)
    # the good objects are kept, the checkout of a repaired server then works
    for oid in (damaged, deleted):
        object_path(remote, oid).unlink(missing_ok=True)
        object_path(remote, oid).write_bytes(object_path(repo.path / ".git", oid).read_bytes())
    copy.git("checkout", "-f", "main")
    assert copy.read(MODEL) == v1


def test_checkout_says_missing_on_the_server(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes) -> None:
    oid = committed(repo, v1)
    repo.git("push", "-q", "origin", "main")
    object_path(remote, oid).unlink()
    copy = tmp_path / "copy"
    result = subprocess.run(["git", "clone", remote.as_uri(), str(copy)], env=repo.env, capture_output=True, text=True)
    assert result.returncode != 0
    line = next(line for line in result.stderr.splitlines() if oid in line and MODEL in line)
    assert "not on the remote" in line and "corrupt" not in line
