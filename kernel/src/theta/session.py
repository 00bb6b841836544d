"""Everything one git command's worth of Theta work needs, created lazily once."""

from __future__ import annotations

import hashlib
import math
import os
import posixpath
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from attrs import evolve

from theta import sharded
from theta.checkpoints import DEFAULT_CHAIN_CAP, DEFAULT_ROOT_UPDATE, Cleaner, CleanSettings, Smudger, choose_format
from theta.errors import ThetaError
from theta.formats import ByteStream, open_source
from theta.git.lfs import POINTER_TEMPLATE, fetch_objects
from theta.git.repo import Repo
from theta.metadata import Metadata, dumps, loads, looks_like_metadata
from theta.next_commit import check_side_data, load_side_data, squash_requests
from theta.plugins import PluginManager, Registry, default_manager
from theta.progress import Progress
from theta.store.objects import ObjectStore
from theta.store.parameters import ParameterStore
from theta.tensors import dtype

CHECKPOINT_TYPE_ENV = "GIT_THETA_CHECKPOINT_TYPE"
LFS_POINTER_START = POINTER_TEMPLATE.split("\n", 1)[0].encode() + b"\n"


class Session:
    """The one wiring place: `clean` and `smudge` are what the filter process calls per file."""

    def __init__(self, repo: Repo | None = None, manager: PluginManager | None = None) -> None:
        self.repo = repo or Repo()
        self._manager = manager
        self._listings: dict[str, list[str]] = {}

    @cached_property
    def manager(self) -> PluginManager:
        return self._manager or default_manager()

    @property
    def registry(self) -> Registry:
        return self.manager.registry

    @cached_property
    def store(self) -> ObjectStore:
        return ObjectStore(self.repo.lfs_dir, self.repo.keep_dir)

    @cached_property
    def params(self) -> ParameterStore:
        return ParameterStore(self.store, self.registry)

    @cached_property
    def cleaner(self) -> Cleaner:
        return Cleaner(self.registry, self.params)

    @cached_property
    def smudger(self) -> Smudger:
        return Smudger(self.registry, self.params, fetch_objects)

    @cached_property
    def spool_dir(self) -> Path:
        path = self.repo.theta_dir / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- the two conversions git asks for ---------------------------------------------------

    def clean(self, path: str, stream: ByteStream) -> bytes:
        """What git stores for the file `stream` holds: its metadata (a metadata file passes through, checked)."""
        committed = self._committed_lfs_pointer(path)
        digest = hashlib.sha256() if committed is not None else None
        with (
            Progress(f"adding {path}", self._work_tree_size(path), "B") as progress,
            open_source(path, progress.reader(stream, digest), spool_dir=self.spool_dir) as source,
        ):
            if not source.head or looks_like_metadata(source.head) or _is_lfs_pointer(source.head):
                data = source.read_rest()
                if data and not _is_lfs_pointer(data):
                    loads(data, path)  # a malformed metadata file is an error, not a checkpoint
                return data
            fmt = choose_format(self.registry, path, source.head, self.format_override(path))
            settings = self.clean_settings(path)
            known = self.previous_versions(path) + self.sibling_versions(path)
            metadata = self.cleaner.clean(source, fmt, known, settings)
            check_side_data(settings.side_data, [*metadata.parameters, *self._model_parameters(path)], path)
            if committed is not None and digest is not None:
                while source.read(1 << 20):
                    pass
                if committed.decode().split("oid sha256:", 1)[-1][:64] == digest.hexdigest():
                    return committed  # the very file Git LFS committed: unchanged until `git theta migrate`
            return dumps(metadata)

    def smudge(self, path: str, blob: bytes, sink: BinaryIO) -> str | None:
        """Write the file git checks out for the stored `blob` into `sink`.

        Returns a problem to report when the file could only be written as its metadata (its
        format plugin is missing); raises `ThetaError` when nothing valid can be written.
        """
        if not looks_like_metadata(blob[:256]):
            sink.write(blob)  # not ours (e.g. committed before the file was tracked): left as it is
            return None
        metadata = loads(blob, path)
        if metadata.format not in self.registry.formats:
            sink.write(blob)
            problem = self.registry.missing("formats", metadata.format, metadata.format_plugin)
            return f"{problem}; then run `git theta checkout` (the metadata file was written instead)"
        with Progress(f"writing {path}", _tensor_bytes(metadata), "B") as progress:
            self.smudger.smudge(metadata, path, progress.writer(sink))
        self.remember_checkout(path, blob)
        return None

    def _committed_lfs_pointer(self, path: str) -> bytes | None:
        """The index's Git LFS pointer for `path`, when Git LFS committed it and no migration is asked for.

        git compares a file with the index through the filter the current attributes name,
        which after `git checkout` of an older commit may be Theta's for a file Git LFS wrote.
        """
        staged = self.repo.read_blob(f":{path}")
        if staged is None or not _is_lfs_pointer(staged) or self.repo.config("theta.migrateLfs") == "true":
            return None
        return staged

    def _work_tree_size(self, path: str) -> int:
        """The size of the file being added, for its progress line (0 when unknown)."""
        try:
            return (self.repo.top_level / path).stat().st_size
        except (OSError, ThetaError):
            return 0

    # -- settings and previous versions ------------------------------------------------------

    def format_override(self, path: str) -> str | None:
        return self.repo.attribute(path, "theta-format") or os.environ.get(CHECKPOINT_TYPE_ENV) or None

    def clean_settings(self, path: str) -> CleanSettings:
        return evolve(self._settings, squash=path in squash_requests(self.repo))

    @cached_property
    def _settings(self) -> CleanSettings:
        """The repository's settings, read once per git command (git's `-c` options included)."""
        location = self.repo.config("theta.updateData")
        return CleanSettings(
            update_type=self.repo.config("theta.updateType"),
            root_update=self.repo.config("theta.rootUpdateType", DEFAULT_ROOT_UPDATE) or DEFAULT_ROOT_UPDATE,
            side_data=load_side_data(Path(location), self.registry) if location else {},
            chain_cap=max(self.repo.config_int("theta.maxChainLength", DEFAULT_CHAIN_CAP), 0),
        )

    def previous_versions(self, path: str) -> list[Metadata]:
        """Versions of `path` that git may compare a new clean against: index, HEAD, last checkout."""
        versions = []
        for label, data in (
            ("index", self.repo.read_blob(f":{path}")),
            ("HEAD", self.repo.read_blob(f"HEAD:{path}")),
            ("last checkout", self._checked_out_record(path)),
        ):
            if data is not None and looks_like_metadata(data[:256]):
                try:
                    versions.append(loads(data, f"{path} ({label} version)"))
                except ThetaError:
                    continue
        return versions

    def sibling_versions(self, path: str) -> list[Metadata]:
        """The index's and HEAD's versions of the other shards of the model `path` is a shard of.

        A tensor that moved to another shard (the model was saved with another shard size) is
        found there, so it costs nothing new.
        """
        directory = posixpath.dirname(path)
        if directory not in self._listings:
            spec = f":(top){directory}/" if directory else ":(top)"
            staged = self.repo.git("ls-files", "-z", "--full-name", "--", spec, check=False).split("\0")
            committed = self.repo.git("ls-tree", "-z", "--name-only", "--full-tree", "HEAD", "--", spec, check=False)
            self._listings[directory] = sorted({p for p in staged + committed.split("\0") if p})
        siblings = [p for p in self._listings[directory] if p != path and sharded.same_model(p, path)]
        versions = []
        for sibling in siblings:
            for spec in (f":{sibling}", f"HEAD:{sibling}"):
                data = self.repo.read_blob(spec)
                if data is not None and looks_like_metadata(data[:256]):
                    try:
                        versions.append(loads(data, f"{sibling} ({spec})"))
                    except ThetaError:
                        continue
        return versions

    def _model_parameters(self, path: str) -> list[str]:
        """Every parameter of the sharded model `path` belongs to, from its index in the work tree."""
        index = sharded.index_path(path)
        try:
            data = (self.repo.top_level / index).read_bytes() if index else None
        except (OSError, ThetaError):
            return []
        return list(sharded.parse_index(data, index).weight_map) if data and index else []

    def _record_path(self, path: str) -> Path:
        return self.repo.theta_dir / "checked-out" / hashlib.sha256(path.encode()).hexdigest()

    def _checked_out_record(self, path: str) -> bytes | None:
        try:
            return self._record_path(path).read_bytes()
        except FileNotFoundError:
            return None

    def remember_checkout(self, path: str, metadata: bytes) -> None:
        """Keep the metadata a file was last written from, so a later clean can recognise it."""
        target = self._record_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(metadata)
        os.replace(tmp, target)

    def close(self) -> None:
        self.repo.close()


def _is_lfs_pointer(head: bytes) -> bool:
    """A Git LFS pointer left in the working tree (a lazy clone, a file Git LFS committed): git keeps it as it is."""
    return len(head) < 1024 and head.startswith(LFS_POINTER_START)


def _tensor_bytes(metadata: Metadata) -> int:
    return sum(dtype(p.dtype).itemsize * math.prod(p.shape) for p in metadata.parameters.values())
