"""`git theta fsck` and `git theta gc`; prunes never make a checkout fail."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from sample_models import edited
from test_trust_objects import MODEL, NAME, committed, corrupt, local_names, object_path, sound

from theta.testing import GitRepo, clone, git_theta_command


def all_objects(repo: GitRepo) -> set[str]:
    root = repo.path / ".git" / "theta" / "objects"
    return {p.name for p in root.rglob("*") if p.is_file()}


def needed_by(repo: GitRepo, rev: str) -> set[str]:
    stored = json.loads(repo.blob(f"{rev}:{MODEL}"))
    found = {stored["skeleton"]["oid"]} if "skeleton" in stored else set()
    for param in stored["parameters"].values():
        for step in param["steps"]:
            found.update(o["oid"] for o in step["objects"].values())
    return found


def test_fsck_of_a_sound_repository(repo: GitRepo, v1: bytes) -> None:
    committed(repo, v1)
    result = repo.theta("fsck")
    assert "all sound" in result.stdout


def test_fsck_names_a_damaged_object_and_repair_fetches_it(repo: GitRepo, remote: Path, v1: bytes) -> None:
    oid = committed(repo, v1)
    repo.git("push", "-q", "origin", "main")
    corrupt(local_names(repo, oid)[0], in_place=False)  # the pushed copy is a hard link: leave it intact
    local_names(repo, oid)[1].unlink()
    local_names(repo, oid)[1].hardlink_to(local_names(repo, oid)[0])
    result = repo.theta("fsck", check=False)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if oid in line)
    for text in (MODEL, repr(NAME), "corrupt", "a good copy is on the remote"):
        assert text in line, (text, line)
    repaired = repo.theta("fsck", "--repair")
    assert "repaired" in repaired.stdout
    assert all(sound(p) for p in local_names(repo, oid))
    repo.theta("fsck")


def test_repair_rebuilds_from_the_work_tree_what_the_remote_lacks(repo: GitRepo, v1: bytes) -> None:
    oid = committed(repo, v1)  # never pushed
    for path in local_names(repo, oid):
        path.unlink()
    result = repo.theta("fsck", check=False)
    assert result.returncode == 1 and "missing" in result.stdout and "git add model.safetensors" in result.stdout
    repo.theta("fsck", "--repair")
    assert all(sound(p) for p in local_names(repo, oid))


def test_repair_from_a_subdirectory_rebuilds_from_the_whole_work_tree(repo: GitRepo, v1: bytes) -> None:
    oid = committed(repo, v1)  # never pushed
    for path in local_names(repo, oid):
        path.unlink()
    (repo.path / "notes").mkdir()
    subprocess.run(
        [git_theta_command(), "fsck", "--repair"], cwd=repo.path / "notes", env=repo.env, capture_output=True
    )
    assert all(sound(p) for p in local_names(repo, oid))


def test_fsck_remote_finds_a_corrupt_copy_on_the_server(repo: GitRepo, remote: Path, v1: bytes) -> None:
    oid = committed(repo, v1)
    repo.git("push", "-q", "origin", "main")
    repo.theta("fsck", "--remote")
    corrupt(object_path(remote, oid), in_place=False)
    result = repo.theta("fsck", "--remote", check=False)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if oid in line)
    assert "corrupt on the remote" in line and repr(NAME) in line
    assert repo.theta("fsck", check=False).returncode == 0  # the local copies are sound
    assert not list((repo.path / ".git" / "theta" / "tmp").iterdir())  # the scratch store is gone


def test_fsck_checks_that_chains_rebuild_their_tensor(repo: GitRepo, v1: bytes) -> None:
    committed(repo, v1)
    v2 = edited(v1, NAME)
    repo.write(MODEL, v2)
    repo.commit_all("v2")
    stored = json.loads(repo.blob(f"HEAD:{MODEL}"))
    chain = stored["parameters"][NAME]["steps"]
    assert len(chain) == 2
    # a base of the same dtype and shape, but another tensor's: every object is sound, the chain is not
    chain[0]["objects"]["value"] = stored["parameters"]["layers.0.attn.weight"]["steps"][0]["objects"]["value"]
    repo.write(MODEL, json.dumps(stored).encode())
    repo.commit_all("a crafted metadata file")
    result = repo.theta("fsck", check=False)
    assert result.returncode == 1
    assert any(repr(NAME) in line and "chain" in line for line in result.stdout.splitlines()), result.stdout
    assert repo.theta("fsck", "HEAD~1").returncode == 0


def test_fsck_all_covers_other_branches_and_revisions(repo: GitRepo, v1: bytes) -> None:
    committed(repo, v1)
    repo.git("checkout", "-q", "-b", "other")
    repo.write(MODEL, edited(v1, "embed.weight"))
    repo.commit_all("v2")
    repo.git("checkout", "-q", "main")
    lost = sorted(needed_by(repo, "other") - needed_by(repo, "main"))[0]
    for path in local_names(repo, lost):
        path.unlink()
    assert repo.theta("fsck").returncode == 0  # HEAD does not need it
    for args in (["--all"], ["other"], ["main", "other"]):
        result = repo.theta("fsck", *args, check=False)
        assert result.returncode == 1 and lost in result.stdout, args


def test_gc_removes_exactly_what_nothing_reachable_needs(repo: GitRepo, v1: bytes) -> None:
    committed(repo, v1)
    repo.git("checkout", "-q", "-b", "doomed")
    repo.write(MODEL, edited(v1, "embed.weight"))
    doomed_commit = repo.commit_all("v2 on a branch that goes away")
    repo.git("checkout", "-q", "main")
    repo.write(MODEL, edited(v1, "layers.0.attn.weight"))
    repo.git("add", MODEL)
    repo.git("stash", "-q")
    repo.write(MODEL, edited(v1, "layers.3.mlp.weight"))
    repo.git("add", MODEL)
    kept = set()
    for rev in ("main", "stash@{0}", "stash@{0}^2", ""):  # "" reads the index's version
        kept |= needed_by(repo, rev)
    doomed = needed_by(repo, doomed_commit) - kept
    assert doomed
    repo.git("branch", "-q", "-D", "doomed")
    before = all_objects(repo)
    assert "would remove" not in repo.theta("gc", "--dry-run").stdout  # the reflog still names v2
    repo.git("reflog", "expire", "--expire=now", "--all")
    dry = repo.theta("gc", "--dry-run").stdout
    assert {line.split()[2] for line in dry.splitlines() if line.startswith("would remove")} == doomed
    assert "would free" in dry and all_objects(repo) == before
    repo.theta("gc")
    assert all_objects(repo) == before - doomed
    assert kept <= all_objects(repo)
    assert not any(object_path(repo.path / ".git", oid).exists() for oid in doomed)
    repo.theta("fsck", "--all")
    repo.git("stash", "drop", "-q")
    repo.git("commit", "-q", "-m", "v3")
    (repo.path / MODEL).unlink()
    repo.git("checkout", "--", MODEL)
    assert repo.read(MODEL) == edited(v1, "layers.3.mlp.weight")


def test_gc_keeps_plain_git_lfs_objects(repo: GitRepo, v1: bytes) -> None:
    committed(repo, v1)
    repo.git("lfs", "track", "*.dat")
    repo.write("data.dat", b"x" * 1000)
    repo.commit_all("lfs file")
    lfs_before = {p.name for p in (repo.path / ".git" / "lfs" / "objects").rglob("*") if p.is_file()}
    repo.theta("gc")
    assert {p.name for p in (repo.path / ".git" / "lfs" / "objects").rglob("*") if p.is_file()} == lfs_before


def offline_checkout_works(copy: GitRepo, expected: bytes) -> None:
    (copy.path / MODEL).unlink()
    copy.git("checkout", "--", MODEL)
    assert copy.read(MODEL) == expected


def test_prunes_never_break_a_checkout(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes) -> None:
    committed(repo, v1)
    v2 = edited(v1, "embed.weight")
    repo.write(MODEL, v2)
    repo.commit_all("v2")
    repo.git("push", "-q", "origin", "main")
    copy = clone(remote, tmp_path / "copy", repo.env)
    shutil.move(remote, tmp_path / "away.git")  # offline from here on
    for work, expected in ((repo, v2), (copy, v2)):
        work.git("lfs", "prune")
        work.git("gc", "--prune=now", "-q")
        offline_checkout_works(work, expected)
        work.git("lfs", "prune")
        work.git("gc", "--prune=now", "-q")
        offline_checkout_works(work, expected)
        work.theta("fsck")
    repo.git("checkout", "-q", "HEAD~1")
    assert repo.read(MODEL) == v1


def test_stray_temp_and_spool_files_are_removed_by_the_next_command(repo: GitRepo, v1: bytes) -> None:
    committed(repo, v1)
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    lfs_tmp = repo.path / ".git" / "lfs" / "tmp"
    spool = repo.path / ".git" / "theta" / "tmp"
    lfs_tmp.mkdir(parents=True, exist_ok=True)
    spool.mkdir(parents=True, exist_ok=True)
    strays = [lfs_tmp / f"theta-{dead}-abc", spool / f"theta-spool-{dead}-abc"]
    for path in strays:
        path.write_bytes(b"partial" * 1000)
    alive = spool / f"theta-spool-{1}-kept"  # process 1 lives: its file is in use
    alive.write_bytes(b"in use")
    repo.write(MODEL, edited(v1, NAME))
    repo.git("add", MODEL)
    assert not any(p.exists() for p in strays)
    assert alive.exists()
    alive.unlink()
