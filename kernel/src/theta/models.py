"""A sharded model at one version, read as one checkpoint: its index names the shards.

`git theta diff`, `git theta log` and `theta.load` / `theta.info` / `theta.diff` use this for
a path that is an index file (`model.safetensors.index.json`): the shards' metadata at that
version is combined (`theta.sharded.combine`), so a tensor that moved between shards is
unchanged, and the model's parameters are loaded and compared wherever they are stored.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from theta import sharded
from theta.diffing.revisions import INDEX, INDEX_SPEC, Comparison, stored_blob
from theta.diffing.sides import MetadataSide
from theta.errors import ThetaError
from theta.git.repo import Repo
from theta.metadata import Metadata, loads_if_metadata
from theta.session import Session


def model_metadata(repo: Repo, index_path: str, version: str) -> Metadata | None:
    """The model `index_path` describes at `version` (a revision, or ":" for the index); None when absent."""
    where = INDEX if version == INDEX_SPEC else version
    blob = stored_blob(repo, index_path, version)
    if blob is None:
        return None
    label = f"{index_path} at {where}"
    index = sharded.parse_index(blob, label)
    shards = {}
    for shard in index.shards:
        metadata = loads_if_metadata(stored_blob(repo, shard, version), f"{shard} at {where}")
        if metadata is None:
            raise ThetaError(f"{label}: shard {shard} is not a Theta metadata file there (is it tracked?)")
        shards[shard] = metadata
    return sharded.combine(index, shards, label)


def index_of(path: str) -> str | None:
    """The index file a path belongs with: itself for an index, the model's index for a shard."""
    return path if sharded.is_index(path) else sharded.index_path(path)


def group(repo: Repo, paths: Iterable[str], versions: Iterable[str]) -> dict[str, list[str]]:
    """Index path -> the given paths that are that model's shards (or its index), for every model
    whose index exists at one of `versions`; paths of no such model are left out."""
    found: dict[str, list[str]] = {}
    exists: dict[str, bool] = {}
    wanted = list(versions)
    for path in paths:
        index = index_of(path)
        if index is None:
            continue
        if index not in exists:
            exists[index] = any(stored_blob(repo, index, v) is not None for v in wanted)
        if exists[index]:
            found.setdefault(index, []).append(path)
    return found


def model_side(session: Session, index_path: str, version: str | None, label: str | None = None) -> MetadataSide | None:
    """The model at `version` as one side of a diff; a working-tree version must be staged first."""
    if version is None:
        raise ThetaError(
            f"{index_path}: a sharded model is compared between stored versions: `git add` it and compare with"
            " the index (`git theta diff --cached`, or `:` in the Python API)"
        )
    metadata = model_metadata(session.repo, index_path, version)
    if metadata is None:
        return None
    return MetadataSide(session, metadata, index_path, label or (INDEX if version == INDEX_SPEC else version))


def stored_version(label: str | None) -> str | None:
    """The version a diff label names: a revision, ":" for the index, None for the working tree."""
    return INDEX_SPEC if label == INDEX else label


def expand_paths(paths: list[str]) -> list[str]:
    """Path arguments with each index file standing for its whole directory (where its shards are)."""
    return [(posixpath.dirname(p) or ".") if sharded.is_index(p) else p for p in paths]


def diff_groups(repo: Repo, comparison: Comparison) -> dict[str, list[str]]:
    """For `git theta diff` between stored versions: index file -> the changed paths of that model."""
    versions = [stored_version(comparison.old_label), stored_version(comparison.new_label)]
    if versions[1] is None:
        return {}  # the working tree: shard by shard
    return group(repo, [c.path for c in comparison.changes], [v for v in versions if v is not None])


def diff_sides(session: Session, comparison: Comparison, index: str) -> tuple[MetadataSide | None, MetadataSide | None]:
    labels = (comparison.old_label, comparison.new_label)
    old, new = (model_side(session, index, stored_version(label), label) for label in labels)
    return old, new
