"""`git theta migrate PATTERN`: checkpoints committed with Git LFS become Theta checkpoints, from now on.

History is not rewritten. The pattern's Git LFS line leaves `.gitattributes` and Theta's
takes its place; every file it matches that is still staged as a Git LFS pointer is cleaned
again (`git add --renormalize`) from its content, which is fetched from the LFS remote first
when the working tree holds only the pointer. The result is staged for the next commit.
Older commits keep their pointers and their `.gitattributes`: checking them out goes through
Git LFS as before, and Git LFS files the pattern does not match are left to it.
"""

from __future__ import annotations

import hashlib
import shutil

from attrs import frozen

from theta.app.tracking import LFS_POINTER_START, attribute_lines, lfs_lines, lfs_pointer_files, track
from theta.errors import ThetaError
from theta.git.lfs import fetch_objects
from theta.git.repo import Repo
from theta.metadata import loads_if_metadata
from theta.sizes import human
from theta.store.objects import ObjectStore


@frozen(kw_only=True)
class Pointer:
    oid: str
    size: int


def parse_pointer(data: bytes, path: str) -> Pointer:
    fields = dict(line.split(" ", 1) for line in data.decode(errors="replace").splitlines() if " " in line)
    oid, size = fields.get("oid", "").removeprefix("sha256:"), fields.get("size", "")
    if len(oid) != 64 or not size.isdigit():
        raise ThetaError(f"{path}: staged as a Git LFS pointer that names no sha256 object")
    return Pointer(oid=oid, size=int(size))


def _sha256(path: object) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:  # type: ignore[call-overload]
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _head(path: object) -> bytes:
    with open(path, "rb") as f:  # type: ignore[call-overload]
        return f.read(len(LFS_POINTER_START))


def drop_lfs_lines(repo: Repo, pattern: str) -> list[str]:
    """Remove the pattern's Git LFS lines from the top-level .gitattributes; returns them."""
    dropped = lfs_lines(repo, pattern)
    if dropped:
        kept = [line for line in attribute_lines(repo) if line not in dropped]
        (repo.top_level / ".gitattributes").write_text("\n".join(kept) + "\n")
    return dropped


def ensure_content(repo: Repo, path: str, pointer: Pointer) -> str:
    """Make the working-tree file hold the object's content; says where it came from."""
    file = repo.top_level / path
    if file.is_file() and file.stat().st_size == pointer.size and _sha256(file) == pointer.oid:
        return "its working-tree content"
    if file.is_file() and _head(file) != LFS_POINTER_START:
        return "its working-tree content, with your uncommitted changes"
    store = ObjectStore(repo.lfs_dir, repo.keep_dir)
    if not store.has(pointer.oid):
        fetch_objects([(pointer.oid, pointer.size)], path)
    if not store.has(pointer.oid):
        raise ThetaError(
            f"{path}: its Git LFS object {pointer.oid} is neither in the local store nor on the remote;"
            " `git lfs fetch` it, then run `git theta migrate` again"
        )
    file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(store.path(pointer.oid), file)
    return "its Git LFS object"


def migrate(repo: Repo, pattern: str, fmt: str | None) -> list[str]:
    """Move the files `pattern` matches from Git LFS to Theta in the index; returns what was done."""
    done = [f"removed from .gitattributes: `{line}`" for line in drop_lfs_lines(repo, pattern)]
    track(repo, pattern, fmt)
    done.append(f"tracking {pattern!r} with Theta")
    pending = lfs_pointer_files(repo, pattern)
    if not pending:
        done.append("no file matching it is committed as a Git LFS pointer: nothing else to convert")
        return done
    sources = {}
    for path in pending:
        pointer = parse_pointer(repo.read_blob(f":{path}") or b"", path)
        sources[path] = (pointer, ensure_content(repo, path, pointer))
    repo.git("-c", "theta.migrateLfs=true", "add", "--renormalize", "--", *pending)
    repo.close()  # the next read of the index starts a new `git cat-file`, which sees the new entries
    for path, (pointer, source) in sources.items():
        metadata = loads_if_metadata(repo.read_blob(f":{path}"), path)
        if metadata is None:
            raise ThetaError(f"{path}: still not a Theta metadata file after `git add --renormalize`")
        done.append(
            f"{path}: a Git LFS object of {human(pointer.size)} is now Theta metadata of"
            f" {len(metadata.parameters)} parameter(s), cleaned from {source}"
        )
    done.append(
        "staged; commit to finish (`git commit -m 'Track checkpoints with Theta'`). Older commits keep their"
        " Git LFS pointers, and checking them out still goes through Git LFS"
    )
    return done
