"""Which tracked files differ between two versions, named the way `git diff` names them.

- no revision: the index against the working tree (`--cached`: HEAD against the index);
- one revision: it against the working tree (`--cached`: against the index);
- two revisions, `A..B` or `A...B` (from where B forked off A): one commit against another.

Files are listed by git's plumbing (`diff-files`, `diff-index`, `diff-tree`), which compares
stored blob ids and index stat data: nothing is cleaned or checked out to find them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from attrs import frozen

from theta.diffing.sides import Side, side_of_blob, side_of_file
from theta.errors import ThetaError
from theta.git.repo import Repo
from theta.metadata import looks_like_metadata
from theta.session import Session

INDEX = "index"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
NULL_OID = "0" * 40


@frozen(kw_only=True)
class Change:
    """One file whose versions differ: blob ids (None where the file is absent) or the working tree."""

    path: str
    old_oid: str | None
    new_oid: str | None
    new_in_worktree: bool = False


@frozen(kw_only=True)
class Comparison:
    old_label: str | None
    new_label: str | None
    changes: tuple[Change, ...]


def verify_revision(repo: Repo, rev: str) -> str:
    """The commit id `rev` names; an error naming it when it names none."""
    found = repo.git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False).strip()
    if not found:
        raise ThetaError(f"unknown revision {rev!r} (not a commit in this repository)")
    return found


def _has_head(repo: Repo) -> bool:
    return bool(repo.git("rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False).strip())


def split_range(revs: Sequence[str], repo: Repo) -> list[str]:
    if len(revs) == 1 and "..." in revs[0]:
        a, b = revs[0].split("...", 1)
        a, b = a or "HEAD", b or "HEAD"
        base = repo.git("merge-base", verify_revision(repo, a), verify_revision(repo, b), check=False).strip()
        if not base:
            raise ThetaError(f"{a!r} and {b!r} have no common ancestor")
        return [base, b]
    if len(revs) == 1 and ".." in revs[0]:
        a, b = revs[0].split("..", 1)
        return [a or "HEAD", b or "HEAD"]
    return list(revs)


def compare(repo: Repo, revs: Sequence[str], cached: bool, paths: Sequence[str]) -> Comparison:
    """The files that differ, before keeping only those Theta tracks."""
    given = list(revs)
    revs = split_range(revs, repo)
    if len(revs) > 2:
        raise ThetaError("give at most two revisions")
    labels = list(given if len(given) == len(revs) else revs)
    if len(revs) == 2:
        if cached:
            raise ThetaError("--cached compares a revision with the index: give at most one revision")
        commits = [verify_revision(repo, rev) for rev in revs]
        raw = repo.git("diff-tree", "-r", "-z", "--no-renames", commits[0], commits[1], "--", *paths)
        old_label, new_label, worktree = labels[0], labels[1], False
    elif len(revs) == 1:
        commit = verify_revision(repo, revs[0])
        args = ["--cached"] if cached else []
        raw = repo.git("diff-index", *args, "-z", "--no-renames", commit, "--", *paths)
        old_label, new_label, worktree = labels[0], INDEX if cached else None, not cached
    elif cached:
        base = "HEAD" if _has_head(repo) else EMPTY_TREE
        raw = repo.git("diff-index", "--cached", "-z", "--no-renames", base, "--", *paths)
        old_label, new_label, worktree = "HEAD", INDEX, False
    else:
        raw = repo.git("diff-files", "-z", "--no-renames", "--", *paths)
        old_label, new_label, worktree = INDEX, None, True
    return Comparison(old_label=old_label, new_label=new_label, changes=tuple(_parse_raw(raw, worktree)))


def _parse_raw(raw: str, worktree: bool) -> list[Change]:
    fields = raw.split("\0")
    changes = []
    i = 0
    while i + 1 < len(fields) and fields[i]:
        meta, path = fields[i], fields[i + 1]
        i += 2
        old_mode, new_mode, old_oid, new_oid, status = meta.lstrip(":").split()[:5]
        if status.startswith("U"):
            continue
        old = None if set(old_mode) == {"0"} else old_oid
        in_worktree = worktree and new_oid == NULL_OID and set(new_mode) != {"0"}
        new = None if set(new_mode) == {"0"} or in_worktree else new_oid
        changes.append(Change(path=path, old_oid=old, new_oid=new, new_in_worktree=in_worktree))
    return changes


def is_tracked(repo: Repo, change: Change) -> bool:
    """Theta tracks the file (its filter attribute), or one of its stored versions is a metadata file."""
    if repo.tracked_paths([change.path]):
        return True
    for oid in (change.old_oid, change.new_oid):
        if oid is not None:
            data = repo.read_blob(oid)
            if data is not None and looks_like_metadata(data[:256]):
                return True
    return False


def sides(session: Session, comparison: Comparison, change: Change) -> tuple[Side | None, Side | None]:
    repo = session.repo
    old = side_of_blob(session, _blob(repo, change.old_oid), change.path, comparison.old_label)
    if change.new_in_worktree:
        file = Path(repo.top_level) / change.path
        new = side_of_file(session, file, change.path, None, in_repo=True, known=session.previous_versions(change.path))
    else:
        new = side_of_blob(session, _blob(repo, change.new_oid), change.path, comparison.new_label)
    return old, new


def _blob(repo: Repo, oid: str | None) -> bytes | None:
    if oid is None:
        return None
    data = repo.read_blob(oid)
    if data is None:
        raise ThetaError(f"blob {oid} is not in this repository")
    return data


INDEX_SPEC = ":"


def stored_blob(repo: Repo, path: str, version: str) -> bytes | None:
    """The stored content of `path` at `version` (a revision, or ":" for the index); None when absent there."""
    if version == INDEX_SPEC:
        return repo.read_blob(f":{path}")
    commit = verify_revision(repo, version)
    return repo.read_blob(f"{commit}:{path}")


def side_at(session: Session, path: str, version: str | None) -> Side | None:
    """`path` at `version`: a revision, ":" for the index, None for the working tree."""
    repo = session.repo
    if version is None:
        known = session.previous_versions(path)
        return side_of_file(session, Path(repo.top_level) / path, path, None, in_repo=True, known=known)
    label = INDEX if version == INDEX_SPEC else version
    return side_of_blob(session, stored_blob(repo, path, version), path, label)
