"""The commits that changed tracked checkpoints, from their metadata alone (no object is read).

History is walked oldest first (parents before children), and each object is credited to
the first commit whose metadata needs it: a commit's `stored_bytes` is what it added to the
store, so a `git mv`, a revert to an older version or a merge that picks a side costs
nothing. A merge commit is compared with its first parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import frozen

from theta.diffing.revisions import NULL_OID, verify_revision
from theta.git.repo import Repo
from theta.metadata import Metadata, Parameter, loads_if_metadata
from theta.models import group
from theta.sharded import union

HEADER = "\x01"


@frozen(kw_only=True)
class MergedParameter:
    """A parameter a merge strategy made: the strategy and its resolved options."""

    name: str
    strategy: str
    options: dict[str, Any]


@frozen(kw_only=True)
class FileChange:
    """What one commit did to one checkpoint.

    `updates` counts the update types of the new last steps of changed and added parameters.
    """

    path: str
    changed: int
    added: int
    removed: int
    updates: dict[str, int]
    stored_bytes: int
    merged: tuple[MergedParameter, ...] = ()
    deleted: bool = False


@frozen(kw_only=True)
class CommitChange:
    commit: str
    parents: tuple[str, ...]
    date: str
    author: str
    subject: str
    files: tuple[FileChange, ...]

    @property
    def stored_bytes(self) -> int:
        return sum(f.stored_bytes for f in self.files)


def history(repo: Repo, rev: str = "HEAD", paths: Sequence[str] = ()) -> list[CommitChange]:
    """Commits reachable from `rev` that changed a tracked checkpoint (among `paths`, if given), newest first."""
    commit = verify_revision(repo, rev)
    raw = repo.git(
        "log",
        "--reverse",
        "--topo-order",
        "--diff-merges=first-parent",
        "--raw",
        "-z",
        "--no-renames",
        "--no-abbrev",
        f"--format={HEADER}%H%x09%P%x09%cs%x09%an%x09%s",
        commit,
    )
    wanted = {p.strip("/") for p in paths}
    tracked: dict[str, bool] = {}
    seen: set[str] = set()
    out: list[CommitChange] = []
    for chunk in raw.split(HEADER)[1:]:
        header, _, body = chunk.partition("\0")
        sha, parents, date, author, subject = (header.split("\t", 4) + [""] * 5)[:5]
        files = []
        entries = []
        for path, old_oid, new_oid in _entries(body):
            if path not in tracked:
                tracked[path] = bool(repo.tracked_paths([path])) or _is_metadata(repo, new_oid or old_oid)
            if tracked[path]:
                entries.append((path, old_oid, new_oid))
        # The shards of a sharded model are one checkpoint, named by its index file.
        models = group(repo, [path for path, _, _ in entries], [sha, *parents.split()[:1]])
        shard_of = {path: index for index, paths in models.items() for path in paths}
        for index, paths in models.items():
            parts = [(p, o, n) for p, o, n in entries if shard_of.get(p) == index]
            old = union([_metadata(repo, o, f"{p} (blob {o})") for p, o, _ in parts], index)
            new = union([_metadata(repo, n, f"{p} (blob {n})") for p, _, n in parts], index)
            change = _compare(index, old, new, seen)
            if change is not None and (not wanted or any(_matches(p, wanted) for p in [index, *paths])):
                files.append(change)
        for path, old_oid, new_oid in entries:
            if path in shard_of:
                continue
            change = _file_change(repo, path, old_oid, new_oid, seen)
            if change is not None and (not wanted or _matches(path, wanted)):
                files.append(change)
        if files:
            out.append(
                CommitChange(
                    commit=sha,
                    parents=tuple(parents.split()),
                    date=date,
                    author=author,
                    subject=subject,
                    files=tuple(files),
                )
            )
    out.reverse()
    return out


def _matches(path: str, wanted: set[str]) -> bool:
    return any(path == w or path.startswith(w + "/") for w in wanted)


def _entries(body: str) -> list[tuple[str, str | None, str | None]]:
    fields = body.lstrip("\n").split("\0")
    out = []
    for i in range(0, len(fields) - 1, 2):
        meta, path = fields[i], fields[i + 1]
        if not meta.startswith(":"):
            break
        parts = meta[1:].split()
        old = None if parts[2] == NULL_OID else parts[2]
        new = None if parts[3] == NULL_OID else parts[3]
        out.append((path, old, new))
    return out


def _is_metadata(repo: Repo, oid: str | None) -> bool:
    return oid is not None and _metadata(repo, oid, "") is not None


def _metadata(repo: Repo, oid: str | None, label: str) -> Metadata | None:
    if oid is None:
        return None
    try:
        return loads_if_metadata(repo.read_blob(oid), label)
    except Exception:  # a damaged version is not a reason to stop showing history
        return None


def _file_change(repo: Repo, path: str, old_oid: str | None, new_oid: str | None, seen: set[str]) -> FileChange | None:
    old = _metadata(repo, old_oid, f"{path} (blob {old_oid})")
    new = _metadata(repo, new_oid, f"{path} (blob {new_oid})")
    return _compare(path, old, new, seen)


def _compare(path: str, old: Metadata | None, new: Metadata | None, seen: set[str]) -> FileChange | None:
    if old is None and new is None:
        return None
    before = old.parameters if old is not None else {}
    after = new.parameters if new is not None else {}
    changed = added = 0
    updates: dict[str, int] = {}
    merged = []
    for name, param in after.items():
        previous = before.get(name)
        if previous is not None and _same(previous, param):
            continue
        if previous is None:
            added += 1
        else:
            changed += 1
        update = param.steps[-1].update
        updates[update] = updates.get(update, 0) + 1
        record = getattr(param, "merge", None)
        if record is not None:
            merged.append(
                MergedParameter(name=name, strategy=record.strategy, options=dict(getattr(record, "options", {}) or {}))
            )
    removed = sum(1 for name in before if name not in after)
    stored = 0
    if new is not None:
        for oid, use in new.objects().items():
            if oid not in seen:
                seen.add(oid)
                stored += use.size
    return FileChange(
        path=path,
        changed=changed,
        added=added,
        removed=removed,
        updates=dict(sorted(updates.items())),
        stored_bytes=stored,
        merged=tuple(merged),
        deleted=new is None,
    )


def _same(a: Parameter, b: Parameter) -> bool:
    return (a.hash, a.dtype, a.shape) == (b.hash, b.dtype, b.shape)
