"""The pre-push hook: push every object that the pushed commits' checkpoints need.

git calls the hook with the remote's name and URL, and one line per ref on standard input:
`<local ref> <local sha> <remote ref> <remote sha>`. Every theta-tracked file that the pushed
commits add or change is a metadata file; the objects it names go to the remote's Git LFS
storage through `git lfs push --object-id` (objects the server has are skipped by git-lfs).
Every object is verified (sha256) first: a missing or damaged one stops the whole push, so a
bad copy never reaches the remote.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from theta.errors import ThetaError
from theta.git.lfs import push_objects
from theta.git.repo import Repo
from theta.metadata import ObjectUse, loads_if_metadata
from theta.store.objects import ObjectStore

ZERO = "0" * 40


def new_blobs(repo: Repo, remote: str, updates: Iterable[tuple[str, str, str, str]]) -> dict[str, str]:
    """Blob id -> path of every blob the pushed commits bring that the remote lacks."""
    tips = [local_sha for _, local_sha, _, _ in updates if local_sha != ZERO]
    if not tips:
        return {}
    known = [remote_sha for _, _, _, remote_sha in updates if remote_sha != ZERO and _exists(repo, remote_sha)]
    listing = repo.git("rev-list", "--objects", *tips, "--not", *known, f"--remotes={remote}")
    blobs: dict[str, str] = {}
    for line in listing.splitlines():
        sha, _, path = line.partition(" ")
        if path:
            blobs.setdefault(sha, path)
    return blobs


def _exists(repo: Repo, sha: str) -> bool:
    return bool(repo.git("cat-file", "-t", sha, check=False).strip())


def objects_to_push(repo: Repo, blobs: dict[str, str]) -> dict[str, tuple[str, ObjectUse]]:
    """oid -> (path, use) for every object named by a tracked metadata blob."""
    wanted: dict[str, tuple[str, ObjectUse]] = {}
    tracked = set(repo.tracked_paths(sorted(set(blobs.values()))))
    for sha, path in blobs.items():
        if path not in tracked:
            continue
        metadata = loads_if_metadata(repo.read_blob(sha), path)
        if metadata is None:
            continue
        for oid, use in metadata.objects().items():
            wanted.setdefault(oid, (path, use))
    return wanted


def unsound(store: ObjectStore, wanted: dict[str, tuple[str, ObjectUse]]) -> list[str]:
    """One line per object that must not be pushed as it is (missing, or damaged), with how to repair it."""
    problems = []
    for oid, (path, use) in wanted.items():
        if store.verify(oid, use.size):
            continue
        where = use.describe(path)
        if store.has(oid):
            problems.append(
                f"{where}: object {oid} is corrupt in the local store (its content does not match its sha256);"
                f" repair it with `git add {path}` from a good copy of the checkpoint, or `git theta fsck --repair`"
                " to fetch a good copy from the remote"
            )
        else:
            problems.append(
                f"{where}: object {oid} is not in the local store; `git add {path}` from the checkpoint"
                " stores it again, or `git theta fetch` gets it from a remote that has it"
            )
    return problems


def pre_push(remote: str, lines: Iterable[str], repo: Repo | None = None) -> int:
    repo = repo or Repo()
    updates = []
    for line in lines:
        fields = line.split()
        if len(fields) == 4:
            updates.append((fields[0], fields[1], fields[2], fields[3]))
    try:
        wanted = objects_to_push(repo, new_blobs(repo, remote, updates))
        store = ObjectStore(repo.lfs_dir, repo.keep_dir)
        problems = unsound(store, wanted)
        if problems:
            for line in problems:
                print(f"theta: error: {line}", file=sys.stderr)
            raise ThetaError(f"cannot push: {len(problems)} object(s) would not arrive intact; nothing was pushed")
        if wanted:
            print(f"theta: pushing {len(wanted)} object(s) to {remote}", file=sys.stderr)
            push_objects(remote, list(wanted), cwd=str(repo.top_level))
    except ThetaError as exc:
        print(f"theta: error: {exc}", file=sys.stderr)
        return 1
    finally:
        repo.close()
    return 0
