"""One version of a tracked file, as a diff sees it: a metadata file, or a checkpoint on disk.

A metadata side (a commit's or the index's version, or a working-tree file left as metadata)
knows every parameter's layout and hash for free, and loads a tensor from its chain only
when asked, fetching the chain's objects if the local store lacks them. A checkpoint side (the
working tree's file) is read through its format plugin, a tensor at a time, and stores
nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from attrs import frozen

from theta.checkpoints import choose_format
from theta.diffing.select import chain_objects, ensure_local
from theta.errors import ThetaError
from theta.formats import open_file_source
from theta.metadata import HASH_PREFIX, Metadata, Parameter, loads_if_metadata
from theta.session import CHECKPOINT_TYPE_ENV, Session
from theta.tensors import Tensor


@frozen(kw_only=True)
class Entry:
    """A parameter of one side: its layout and hash, and its chain when the side is stored."""

    dtype: str
    shape: tuple[int, ...]
    hash: str
    param: Parameter | None = None

    @property
    def update(self) -> str | None:
        return self.param.steps[-1].update if self.param is not None else None

    @property
    def stored_bytes(self) -> int | None:
        if self.param is None:
            return None
        return sum(record.size for record in self.param.steps[-1].objects.values())

    def same(self, other: Entry) -> bool:
        return (self.hash, self.dtype, self.shape) == (other.hash, other.dtype, other.shape)


class Side:
    """One version of a file. `label` names it (a revision, "index", None for the working tree)."""

    label: str | None
    stored: bool

    def entries(self) -> dict[str, Entry]:
        raise NotImplementedError

    def load(self, name: str) -> Tensor:
        raise NotImplementedError

    def stream(self) -> Iterator[tuple[str, Entry, Tensor]] | None:
        """Every parameter with its tensor, in file order, for a side read once; None for random access."""
        return None

    def objects(self) -> dict[str, int] | None:
        """oid -> size of everything this version needs; None when it is not stored."""
        return None


class MetadataSide(Side):
    stored = True

    def __init__(self, session: Session, metadata: Metadata, path: str, label: str | None) -> None:
        self.session = session
        self.metadata = metadata
        self.path = path
        self.label = label

    def entries(self) -> dict[str, Entry]:
        return {
            name: Entry(dtype=p.dtype, shape=p.shape, hash=p.hash, param=p)
            for name, p in self.metadata.parameters.items()
        }

    def prepare(self, names: list[str]) -> None:
        """Fetch, in one batch, what the chains of `names` need and the local store lacks."""
        ensure_local(self.session.store, chain_objects(self.metadata, names), self.path, self.session.repo.cwd)

    def load(self, name: str) -> Tensor:
        self.prepare([name])
        return self.session.params.load(self.metadata.parameters[name], self.path, name)

    def objects(self) -> dict[str, int]:
        return {oid: use.size for oid, use in self.metadata.objects().items()}


class CheckpointSide(Side):
    """A checkpoint file read through its format; `path` is its path in the repository, when it has one.

    `known` are stored versions of the same file (the index's, HEAD's): a tensor whose hash one
    of them has borrows that entry's chain, so that what is already stored shows as such.
    """

    stored = False

    def __init__(
        self, session: Session, file: Path, path: str, label: str | None, in_repo: bool, known: list[Metadata]
    ) -> None:
        self.session = session
        self.file = file
        self.path = path
        self.label = label
        self.in_repo = in_repo
        self.known = known
        self.format_name: str | None = None

    def _borrow(self, name: str, tensor: Tensor, tensor_hash: str) -> Parameter | None:
        for metadata in self.known:
            param = metadata.parameters.get(name)
            if param is not None and (param.hash, param.dtype, param.shape) == (
                tensor_hash,
                tensor.dtype,
                tensor.shape,
            ):
                return param
        return None

    def stream(self) -> Iterator[tuple[str, Entry, Tensor]]:
        override = self.session.format_override(self.path) if self.in_repo else None
        with open_file_source(self.file, self.path) as source:
            fmt = choose_format(self.session.registry, self.path, source.head, override or _env_override())
            self.format_name = fmt.name
            seen: set[str] = set()
            for name, tensor in fmt.read(source).parameters:
                if name in seen:
                    raise ThetaError(f"{self.path}: parameter {name!r} appears twice")
                seen.add(name)
                tensor_hash = HASH_PREFIX + tensor.sha256()
                param = self._borrow(name, tensor, tensor_hash)
                yield name, Entry(dtype=tensor.dtype, shape=tensor.shape, hash=tensor_hash, param=param), tensor

    def entries(self) -> dict[str, Entry]:
        return {name: entry for name, entry, _ in self.stream()}

    def load(self, name: str) -> Tensor:
        for found, _, tensor in self.stream():
            if found == name:
                return Tensor(dtype=tensor.dtype, shape=tensor.shape, data=bytes(tensor.data))
        raise ThetaError(f"{self.path}: parameter {name!r} is not in the file")


def _env_override() -> str | None:
    import os

    return os.environ.get(CHECKPOINT_TYPE_ENV) or None


def side_of_blob(session: Session, blob: bytes | None, path: str, label: str | None) -> MetadataSide | None:
    """The side a stored blob gives, None when it does not exist; an error when it is not a metadata file."""
    if blob is None:
        return None
    metadata = loads_if_metadata(blob, f"{path} ({label or 'working tree'})")
    if metadata is None:
        raise ThetaError(f"{path} ({label}) is not a Theta metadata file (was it committed before `git theta track`?)")
    return MetadataSide(session, metadata, path, label)


def side_of_file(
    session: Session, file: Path, path: str, label: str | None, in_repo: bool, known: list[Metadata] | None = None
) -> Side | None:
    """The side a file on disk gives: its metadata when it holds metadata, else the checkpoint it is."""
    if not file.is_file():
        return None
    with open(file, "rb") as f:
        head = f.read(256)
    if head.lstrip()[:1] == b"{":
        metadata = loads_if_metadata(file.read_bytes(), path)
        if metadata is not None:
            return MetadataSide(session, metadata, path, label)
    return CheckpointSide(session, file, path, label, in_repo, known or [])
