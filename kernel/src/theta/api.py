"""The Python API: read any version of a tracked checkpoint without checking it out.

    import theta
    weights = theta.load("model.safetensors", rev="v1.0", params=["layers.0.*"])
    theta.info("model.safetensors").parameters["embed.weight"].update
    theta.diff("model.safetensors", "HEAD~1", "HEAD").summary

`path` is relative to the top of the repository `repo` (a directory inside it); a sharded
model's index file (`model.safetensors.index.json`) stands for all its shards as one checkpoint. A version is a
revision, ":" for the index, or (for `diff`'s `new`) None for the working tree. Only the
objects the selected parameters' chains need are read, and those the local store lacks are
fetched from the Git LFS remote in one batch. Errors are `theta.ThetaError`s with the same
messages as the command line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from attrs import frozen

from theta import sharded
from theta.diffing.engine import diff_file
from theta.diffing.revisions import INDEX, INDEX_SPEC, side_at, stored_blob
from theta.diffing.select import chain_objects, ensure_local, selected_names, selector
from theta.diffs import FileDiff
from theta.errors import ThetaError
from theta.git.repo import Repo
from theta.metadata import Metadata, loads_if_metadata
from theta.models import model_metadata, model_side
from theta.session import Session
from theta.tensors import Tensor, dtype

__all__ = ["CheckpointInfo", "ParameterInfo", "diff", "info", "load"]


@frozen(kw_only=True)
class ParameterInfo:
    """A parameter as stored: `update` is its last step's type, `chain` every step's type, oldest first;
    `stored_bytes` what the last step's objects hold, `chain_bytes` what the whole chain's hold."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    hash: str
    update: str
    chain: tuple[str, ...]
    stored_bytes: int
    chain_bytes: int


@frozen(kw_only=True)
class CheckpointInfo:
    """A checkpoint at a version: its format, parameters (in checkpoint order) and what its objects hold."""

    path: str
    rev: str
    format: str
    format_plugin: str | None
    parameters: dict[str, ParameterInfo]
    skeleton_bytes: int
    stored_bytes: int


def load(
    path: str | os.PathLike[str],
    *,
    rev: str = "HEAD",
    params: Sequence[str] | None = None,
    repo: str | os.PathLike[str] = ".",
) -> dict[str, np.ndarray]:
    """The tensors of the checkpoint `path` at `rev`: parameter name -> numpy array, in checkpoint order.

    `params` are globs on whole names (`layers.0.*`); None loads every parameter. bfloat16 and
    float8 arrays use the `ml_dtypes` types.
    """
    with open_session(repo) as session:
        relpath = repo_path(session.repo, path)
        metadata = stored_metadata(session.repo, relpath, rev)
        names = selected_names(metadata, _globs(params), relpath)
        ensure_local(session.store, chain_objects(metadata, names), relpath, session.repo.cwd)
        return {name: to_numpy(session.params.load(metadata.parameters[name], relpath, name)) for name in names}


def info(path: str | os.PathLike[str], *, rev: str = "HEAD", repo: str | os.PathLike[str] = ".") -> CheckpointInfo:
    """Names, dtypes, shapes, update types and stored bytes of the checkpoint at `rev`; fetches no object."""
    with open_session(repo) as session:
        relpath = repo_path(session.repo, path)
        metadata = stored_metadata(session.repo, relpath, rev)
        return describe(metadata, relpath, rev)


def diff(
    path: str | os.PathLike[str],
    old: str | None = "HEAD",
    new: str | None = None,
    *,
    params: Sequence[str] | None = None,
    repo: str | os.PathLike[str] = ".",
) -> FileDiff:
    """The figures of `git theta diff --json` for `path` from `old` to `new` (None: the working tree)."""
    with open_session(repo) as session:
        relpath = repo_path(session.repo, path)
        if sharded.is_index(relpath):
            old_side, new_side = model_side(session, relpath, old), model_side(session, relpath, new)
        else:
            old_side, new_side = side_at(session, relpath, old), side_at(session, relpath, new)
        if old_side is None and new_side is None:
            raise ThetaError(f"{relpath} exists neither at {_name(old)} nor at {_name(new)}")
        return diff_file(relpath, old_side, new_side, select=selector(_globs(params)) if params else None)


def describe(metadata: Metadata, path: str, rev: str) -> CheckpointInfo:
    parameters = {}
    for name, param in metadata.parameters.items():
        sizes = [sum(r.size for r in step.objects.values()) for step in param.steps]
        parameters[name] = ParameterInfo(
            name=name,
            dtype=param.dtype,
            shape=param.shape,
            hash=param.hash,
            update=param.steps[-1].update,
            chain=tuple(step.update for step in param.steps),
            stored_bytes=sizes[-1],
            chain_bytes=sum(sizes),
        )
    return CheckpointInfo(
        path=path,
        rev=rev,
        format=metadata.format,
        format_plugin=metadata.format_plugin,
        parameters=parameters,
        skeleton_bytes=metadata.skeleton.size if metadata.skeleton is not None else 0,
        stored_bytes=sum(use.size for use in metadata.objects().values()),
    )


def to_numpy(tensor: Tensor) -> np.ndarray:
    """A writable array of the tensor; dtypes NumPy lacks become their `ml_dtypes` types."""
    if dtype(tensor.dtype).native:
        return tensor.numpy().copy()
    try:
        import ml_dtypes
    except ImportError:
        raise ThetaError(f"{tensor.dtype} arrays need the ml_dtypes package: `pip install ml_dtypes`") from None
    return tensor.numpy().view(getattr(ml_dtypes, tensor.dtype)).copy()


class open_session:
    """A session on the repository at `repo`, closed (its git helpers stopped) when the block ends."""

    def __init__(self, repo: str | os.PathLike[str]) -> None:
        where = Path(repo)
        if not where.is_dir():
            raise ThetaError(f"{where} is not a directory")
        probe = Repo(where.resolve())
        if probe.git("rev-parse", "--git-dir", check=False).strip() == "":
            raise ThetaError(f"{where} is not inside a git repository")
        self.session = Session(probe)

    def __enter__(self) -> Session:
        return self.session

    def __exit__(self, *exc: object) -> None:
        self.session.close()


def repo_path(repo: Repo, path: str | os.PathLike[str]) -> str:
    given = Path(path)
    if given.is_absolute():
        try:
            return given.resolve().relative_to(Path(repo.top_level).resolve()).as_posix()
        except ValueError:
            raise ThetaError(f"{given} is outside the repository {repo.top_level}") from None
    return given.as_posix().removeprefix("./")


def stored_metadata(repo: Repo, path: str, rev: str) -> Metadata:
    """`path`'s metadata at `rev`; for a sharded model's index file, its shards' as one checkpoint."""
    where = INDEX if rev == INDEX_SPEC else rev
    if sharded.is_index(path):
        model = model_metadata(repo, path, rev)
        if model is None:
            raise ThetaError(f"{path} does not exist at {where}")
        return model
    blob = stored_blob(repo, path, rev)
    if blob is None:
        raise ThetaError(f"{path} does not exist at {where}")
    metadata = loads_if_metadata(blob, f"{path} at {where}")
    if metadata is None:
        raise ThetaError(f"{path} at {where} is not a Theta metadata file (is it tracked with `git theta track`?)")
    return metadata


def _globs(params: Sequence[str] | str | None) -> list[str] | None:
    if params is None:
        return None
    if isinstance(params, str):
        return [params]
    return list(params)


def _name(version: str | None) -> str:
    return "the working tree" if version is None else INDEX if version == INDEX_SPEC else version
