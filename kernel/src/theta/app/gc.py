"""`git theta gc`: remove the local objects that nothing reachable needs.

Kept are the objects named by a metadata file (or a Git LFS pointer) in any commit reachable
from a branch, a tag, a remote-tracking ref, the stash, a reflog entry, an operation in
progress (a merge, a cherry-pick, a rebase), or in the index. Only Theta's objects (those
with a second name under `.git/theta/objects`) are candidates: the others are git-lfs's
own, which `git lfs prune` looks after. Both names of an object are removed.
"""

from __future__ import annotations

from attrs import frozen

from theta.app.fsck import needed_objects
from theta.errors import ThetaError
from theta.git.repo import Repo
from theta.sizes import human
from theta.store.objects import ObjectStore


@frozen(kw_only=True)
class Garbage:
    oid: str
    size: int


def garbage(repo: Repo, store: ObjectStore) -> list[Garbage]:
    """Theta's local objects that nothing reachable needs, largest first."""
    needed = needed_objects(repo, [], everything=True)
    if needed.unreadable:
        raise ThetaError(
            "cannot tell which objects are garbage while a metadata file cannot be read: "
            + "; ".join(needed.unreadable[:3])
        )
    keep = set(needed.objects) | needed.lfs_objects
    ours = store.theta_oids()
    found = [Garbage(oid=oid, size=store.size_on_disk(oid)) for oid in ours - keep]
    return sorted(found, key=lambda g: (-g.size, g.oid))


def gc(repo: Repo, dry_run: bool) -> int:
    if (repo.git_dir / "index.lock").exists():
        raise ThetaError(
            "another git command is running here (.git/index.lock exists); run `git theta gc` after it ends"
        )
    store = ObjectStore(repo.lfs_dir, repo.keep_dir)
    for path in store.sweep():
        print(f"theta: gc: removed {path.name}, left by a process that was killed")
    found = garbage(repo, store)
    total = human(sum(g.size for g in found))
    for item in found:
        print(f"{'would remove' if dry_run else 'removed'} {item.oid} {human(item.size)}")
        if not dry_run:
            store.discard(item.oid)
    verb = "would free" if dry_run else "freed"
    print(f"theta: gc: {len(found)} object(s) nothing reachable needs; {verb} {total}")
    repo.close()
    return 0
