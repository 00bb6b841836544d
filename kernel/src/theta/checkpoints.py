"""Clean and smudge: a checkpoint becomes metadata plus objects, and back.

This is the straight path a tensor follows from `git add` to its object: the format plugin
reads the checkpoint, each tensor is hashed, an unchanged tensor reuses its previous entry,
a changed one is encoded by the update type that stores it smallest (exactly), and the
arrays land in the object store. Nothing here speaks git's protocol.

Work on tensors runs on worker threads (`theta.prefetch`) while the format reads the next
one; the metadata is the same as a serial clean's.

A chain must pay for itself: an update is kept only when it stores at most PAYS of what the
tensor costs stored whole (compressed), and while the chain's objects together stay within
CHAIN_FACTOR of that, so a checkout or a clone never fetches much more than the tensor. A
large tensor is screened first: each candidate update type encodes a sample of its rows, and
one whose estimate is far over what it may store is not run on the whole tensor.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import BinaryIO

import numpy as np
from attrs import field, frozen

from theta.bits import evenly_spaced
from theta.downloads import BackgroundFetch, Fetcher
from theta.errors import FormatError, ObjectCorrupt, ObjectMissing, ThetaError
from theta.formats import CheckpointFormat, Layout, Source, TensorInfo
from theta.metadata import HASH_PREFIX, METADATA_VERSION, ArrayObject, Blob, Metadata, ObjectUse, Parameter, Step
from theta.plugins import Registry
from theta.prefetch import WORKERS, OrderedPool, PrefetchingLoader
from theta.store import codecs
from theta.store.parameters import PackedUpdate, ParameterStore
from theta.tensors import Tensor, dtype
from theta.updates import UpdateType

DEFAULT_CHAIN_CAP = 8
# The update type that starts every chain (`git config theta.rootUpdateType`): it must store
# the tensor whole (`needs_base = False`). The default names the built-in `dense` plugin.
DEFAULT_ROOT_UPDATE = "dense"
# Once an exact encoding stores at most this share of the tensor, the costlier update types
# are not tried: they could save at most this share of it.
SMALL_ENOUGH = 1 / 32
# An update is kept only when it stores at most this share of the tensor stored whole...
PAYS = 0.5
# ... and while all the objects of its chain stay within this multiple of that, and within
# the tensor's own size (so a clone never downloads more than the checkpoint it checks out).
CHAIN_FACTOR = 1.5
# Tensors smaller than this weigh nothing in a clone: for them an update need only be smaller.
PAYS_BYTES = 1 << 18
# Tensors of at least this many bytes (and at least 2-D) are screened on a sample of rows:
# TRIAL_SHARE of them, at least TRIAL_ROWS and at most about TRIAL_ELEMENTS elements. A
# candidate whose estimate exceeds what it may store by TRIAL_SLACK is not run on the whole.
# The estimate is close: with 1.5, on a bfloat16 fine-tune sparse and IA3 were estimated at
# 1.0-1.1 times their limit, then run on every tensor and refused, for 2.6x the time of the
# same result.
TRIAL_BYTES = 1 << 18
TRIAL_SHARE = 1 / 16
TRIAL_ROWS = 32
TRIAL_ELEMENTS = 1 << 16
TRIAL_SLACK = 1.0


@frozen(kw_only=True)
class CleanSettings:
    """How changed tensors are encoded.

    `update_type` forces one type; `side_data` maps a parameter name to arrays the user
    supplied for it; `chain_cap` is how many updates may follow a dense version; `squash`
    stores every tensor dense; `root_update` is the type that stores a tensor whole;
    `max_update_cost` leaves out update types costlier than that.
    """

    update_type: str | None = None
    root_update: str = DEFAULT_ROOT_UPDATE
    max_update_cost: int | None = None
    side_data: Mapping[str, Mapping[str, Tensor]] = field(factory=dict)
    chain_cap: int = DEFAULT_CHAIN_CAP
    squash: bool = False


def choose_format(registry: Registry, path: str, head: bytes, override: str | None) -> CheckpointFormat:
    if override:
        return registry.format(override)
    formats = list(registry.formats.values())
    lowered = path.lower()
    by_extension = [f for f in formats if any(lowered.endswith(ext) for ext in f.extensions)]
    for fmt in by_extension + [f for f in formats if f not in by_extension]:
        if fmt.sniff(head):
            return fmt
    names = ", ".join(sorted(registry.formats)) or "none"
    raise FormatError(
        f"{path}: no installed checkpoint format recognizes this file (installed: {names}). If it is a"
        " checkpoint, install the plugin for its format, or name the format with"
        " `git theta track PATTERN --format NAME`; if it is not, stop tracking it with Theta in .gitattributes"
    )


class Cleaner:
    def __init__(self, registry: Registry, params: ParameterStore, workers: int | None = None) -> None:
        self.registry = registry
        self.params = params
        self.workers = workers or WORKERS

    def _job(
        self, path: str, name: str, tensor: Tensor, known: list[Parameter], settings: CleanSettings
    ) -> Callable[[], Parameter]:
        return lambda: self.encode_parameter(path, name, tensor, known, settings)

    def clean(
        self, source: Source, fmt: CheckpointFormat, previous: Sequence[Metadata], settings: CleanSettings
    ) -> Metadata:
        """Store a checkpoint's new objects and describe it.

        `previous` lists versions of this file that git may compare against (the index's,
        HEAD's, the one last checked out), most authoritative first. A tensor found in any of
        them, with the same name and hash, reuses that entry as it is, so cleaning a file git
        already knows gives back exactly what git holds; a changed tensor is encoded against
        the first version that has a parameter of its name.
        """
        self.root_type(settings)  # every chain starts whole: refuse before storing anything
        checkpoint = fmt.read(source)
        skeleton = None
        if checkpoint.skeleton:
            oid, size = self.params.store.put(checkpoint.skeleton)
            skeleton = Blob(oid=oid, size=size)
        versions = [m.parameters for m in previous if m.format == fmt.name]
        parameters: dict[str, Parameter] = {}
        seen: set[str] = set()
        with OrderedPool[Parameter](workers=self.workers) as pool:
            for name, tensor in checkpoint.parameters:
                if name in seen:
                    raise FormatError(f"{source.path}: parameter {name!r} appears twice")
                seen.add(name)
                known = [v[name] for v in versions if name in v]
                pool.submit(name, self._job(source.path, name, tensor, known, settings), tensor.nbytes)
                parameters.update(pool.done())
            parameters.update(pool.rest())
        return Metadata(
            theta=METADATA_VERSION,
            format=fmt.name,
            format_plugin=self.registry.owner("formats", fmt.name),
            skeleton=skeleton,
            parameters=parameters,
        )

    def encode_parameter(
        self,
        path: str,
        name: str,
        tensor: Tensor,
        known: list[Parameter],
        settings: CleanSettings,
        reference: Tensor | None = None,
    ) -> Parameter:
        """The entry for `tensor`: a known entry it equals, an update of `known[0]`, or a new root.

        `reference`, when given, is `known[0]`'s tensor already in memory (it is not loaded again).
        """
        tensor_hash = HASH_PREFIX + tensor.sha256()
        layout = (tensor.dtype, tensor.shape)
        if not settings.squash:
            for entry in known:
                if (
                    entry.hash == tensor_hash
                    and (entry.dtype, entry.shape) == layout
                    and self._still_stored(entry, tensor)
                ):
                    return entry
        previous = known[0] if known else None
        same_layout = previous is not None and (previous.dtype, previous.shape) == layout
        steps: tuple[Step, ...] = ()
        updates_so_far = len(previous.steps) - 1 if previous is not None else 0
        if previous is not None and same_layout and not settings.squash and updates_so_far < settings.chain_cap:
            steps = self._incremental(path, name, tensor, tensor_hash, previous, settings, reference)
        if not steps:
            steps = (self._root_step(path, name, tensor, tensor_hash, settings),)
        entry = Parameter(dtype=tensor.dtype, shape=tensor.shape, hash=tensor_hash, steps=steps)
        self.params.remember(entry)
        return entry

    def _still_stored(self, entry: Parameter, tensor: Tensor) -> bool:
        """Whether a known entry's objects are sound; a missing or damaged copy of the tensor itself is rewritten."""
        store = self.params.store
        own = entry.hash.removeprefix(HASH_PREFIX)
        for step in entry.steps:
            for record in step.objects.values():
                if record.oid == own and record.codec == "raw":
                    store.put(tensor.data, oid=own)
                elif not store.known_sound(record.oid, record.size) and not self._rewrite_whole(entry, record, tensor):
                    return False
        return True

    def _rewrite_whole(self, entry: Parameter, record: ArrayObject, tensor: Tensor) -> bool:
        """Rewrite the missing or damaged object of a tensor stored compressed whole, when it gives that oid."""
        if (
            len(entry.steps) != 1
            or record.codec != codecs.GROUPED
            or (record.dtype, record.shape)
            != (
                tensor.dtype,
                tensor.shape,
            )
        ):
            return False
        codec, data = codecs.encode_dense(tensor.data, dtype(tensor.dtype).itemsize)
        if codec != record.codec or hashlib.sha256(data).hexdigest() != record.oid:
            return False
        self.params.store.put(data, oid=record.oid)
        return True

    def root_type(self, settings: CleanSettings) -> UpdateType:
        root = self.registry.update_type(settings.root_update)
        if root.needs_base:
            raise ThetaError(
                f"update type {settings.root_update!r} cannot start a chain (it needs a base);"
                " set `git config theta.rootUpdateType` to a type that stores tensors whole"
            )
        return root

    def _root_step(self, path: str, name: str, tensor: Tensor, tensor_hash: str, settings: CleanSettings) -> Step:
        root = self.root_type(settings)
        try:
            update = root.encode(tensor, None, settings.side_data.get(name))
        except ThetaError as exc:
            raise ThetaError(f"{path}: parameter {name!r}: update type {root.name!r}: {exc}") from None
        if update is None:
            raise ThetaError(f"{path}: parameter {name!r}: update type {root.name!r} declined to store it whole")
        packed = self.params.pack(root.name, update, whole=tensor, whole_hash=tensor_hash)
        return self.params.save(packed, tensor_hash)

    def _candidates(self, settings: CleanSettings) -> list[str]:
        if settings.update_type is not None:
            forced = self.registry.update_type(settings.update_type)  # an unknown name is an error
            return [settings.update_type] if forced.needs_base else []
        found = [
            (u.cost, n)
            for n, u in self.registry.update_types.items()
            if u.needs_base and (settings.max_update_cost is None or u.cost <= settings.max_update_cost)
        ]
        return [name for _, name in sorted(found)]

    def _incremental(
        self,
        path: str,
        name: str,
        tensor: Tensor,
        tensor_hash: str,
        previous: Parameter,
        settings: CleanSettings,
        reference: Tensor | None = None,
    ) -> tuple[Step, ...]:
        candidates = self._candidates(settings)
        if not candidates:
            return ()
        forced = settings.update_type is not None
        budget = float(tensor.nbytes)
        if tensor.nbytes >= PAYS_BYTES:
            whole = codecs.dense_estimate(tensor.data, dtype(tensor.dtype).itemsize)
            chain = sum(record.size for step in previous.steps for record in step.objects.values())
            budget = min(PAYS * whole, min(CHAIN_FACTOR * whole, tensor.nbytes) - chain)
        if budget <= 0 and not forced:
            return ()  # the chain has cost as much as it may: start again whole
        try:
            base = reference if reference is not None else self.params.load(previous, path, name)
        except ThetaError as exc:
            _warn(f"{exc}; storing {name!r} whole")
            return ()
        side_data = settings.side_data.get(name)
        best: PackedUpdate | None = None
        for update_name in candidates:
            if best is not None and best.stored_size <= tensor.nbytes * SMALL_ENOUGH:
                break
            limit = tensor.nbytes if forced else budget
            if best is not None:
                limit = min(limit, best.stored_size)
            update_type = self.registry.update_type(update_name)
            on_trial = not forced and side_data is None and not update_type.screens_itself
            if on_trial and not self._may_fit(update_type, tensor, base, limit):
                continue
            try:
                update = update_type.encode(tensor, base, side_data)
                if update is None:
                    continue
                packed = self.params.pack(update_name, update)
                if packed.stored_size >= limit or packed.stored_size >= tensor.nbytes:
                    continue
                decoded = update_type.decode(update, base, TensorInfo(dtype=tensor.dtype, shape=tensor.shape))
            except ThetaError as exc:
                raise ThetaError(f"{path}: parameter {name!r}: update type {update_name!r}: {exc}") from None
            except Exception as exc:
                owner = self.registry.owner("update_types", update_name)
                _warn(
                    f"{path}: parameter {name!r}: update type {update_name!r} ({owner}) failed:"
                    f" {type(exc).__name__}: {exc}; trying the next one"
                )
                continue
            if not decoded.same_bits(tensor):
                _warn(f"{path}: parameter {name!r}: update type {update_name!r} is not exact here; not used")
                continue
            best = packed
        if best is None:
            if forced and self.registry.update_type(settings.update_type).needs_base:  # type: ignore[arg-type]
                _warn(f"{path}: parameter {name!r}: update type {settings.update_type!r} does not apply; stored whole")
            return ()
        return (*previous.steps, self.params.save(best, tensor_hash))

    def _may_fit(self, update_type: UpdateType, tensor: Tensor, base: Tensor, limit: float) -> bool:
        """Whether `update_type` may store `tensor` in `limit` bytes, judged on a sample of its rows.

        Small and 1-D tensors are not screened. A type that declines the sample, fails on it or
        is estimated over TRIAL_SLACK times `limit` is not run on the whole tensor.
        """
        rows = tensor.shape[0] if len(tensor.shape) >= 2 else 0
        if tensor.nbytes < TRIAL_BYTES or rows < 2 * TRIAL_ROWS:
            return True
        per_row = tensor.numel // rows
        count = min(max(TRIAL_ROWS, math.ceil(rows * TRIAL_SHARE)), max(TRIAL_ROWS, TRIAL_ELEMENTS // per_row))
        picked = evenly_spaced(rows, count)
        sample, sample_base = (
            Tensor.from_numpy(np.ascontiguousarray(t.numpy()[picked]), dtype_name=t.dtype) for t in (tensor, base)
        )
        try:
            update = update_type.encode(sample, sample_base, None)
            if update is None:
                return False
            packed = self.params.pack(update_type.name, update)
        except Exception:
            return True  # the whole tensor will tell, with the error where it belongs
        estimate = 0.0
        for array in packed.arrays.values():
            shape = array.record.shape
            # Arrays whose size does not follow the rows (factors over columns, a scale per column) are not scaled up.
            fixed = (len(shape) >= 2 and shape[0] != picked.size) or (len(shape) == 1 and shape[0] == per_row)
            estimate += array.record.size * (1 if fixed else rows / picked.size)
        return estimate <= limit * TRIAL_SLACK


class Smudger:
    def __init__(self, registry: Registry, params: ParameterStore, fetch: Fetcher | None) -> None:
        self.registry = registry
        self.params = params
        self.fetch = fetch

    def smudge(self, metadata: Metadata, path: str, sink: BinaryIO) -> None:
        """Write the checkpoint; objects not in the local store are downloaded while it is written.

        A tensor waits only for its own objects. One that cannot be had stops the write with an
        error naming it (the filter then reports a failure, and git writes no file).
        """
        fmt = self.registry.format(metadata.format, metadata.format_plugin)
        store = self.params.store
        needed = metadata.objects()
        missing = [(oid, use.size) for oid, use in needed.items() if not store.has(oid)]
        # git-lfs checks each object's sha256 as it downloads it: what lands is not hashed again.
        download = BackgroundFetch(self.fetch, missing, path, landed=store.vouch) if missing and self.fetch else None

        def present(oids: Sequence[str]) -> None:
            if download is not None and not all(store.has(oid) for oid in oids):
                download.wait(oids)  # until they landed or the download ended
            absent = [oid for oid in oids if not store.has(oid)]
            if not absent:
                return
            failures = download.finish() if download is not None else []  # what is absent now will not come
            everything_absent = [(oid, size) for oid, size in missing if not store.has(oid)]
            corrupt = getattr(failures, "corrupt_on_remote", frozenset())
            raise _missing_error(path, needed, everything_absent or [(absent[0], needed[absent[0]].size)], corrupt)

        def load(name: str) -> Tensor:
            entry = metadata.parameters[name]
            present([record.oid for step in entry.steps for record in step.objects.values()])
            return self.params.load(entry, path, name)

        loader = None
        try:
            skeleton = b""
            if metadata.skeleton is not None:
                present([metadata.skeleton.oid])
                oid, size = metadata.skeleton.oid, metadata.skeleton.size
                skeleton = store.read(oid, size, check=not store.unchanged_since_verified(oid, size))
            loader = PrefetchingLoader(
                list(metadata.parameters),
                load,
                sizes={n: dtype(p.dtype).itemsize * math.prod(p.shape) for n, p in metadata.parameters.items()},
            )
            layout = Layout(
                skeleton=skeleton,
                parameters={n: TensorInfo(dtype=p.dtype, shape=p.shape) for n, p in metadata.parameters.items()},
                load=loader,
                hashes={n: p.hash.removeprefix(HASH_PREFIX) for n, p in metadata.parameters.items()},
                path=path,
            )
            fmt.write(layout, sink)
        finally:
            if loader is not None:
                loader.close()
            if download is not None:
                download.finish()


def _missing_error(
    path: str, needed: Mapping[str, ObjectUse], missing: Sequence[tuple[str, int]], corrupt_remote: Collection[str]
) -> ThetaError:
    damaged = [oid for oid, _ in missing if oid in corrupt_remote]
    oid = damaged[0] if damaged else missing[0][0]
    owner = needed[oid].parameter
    what = "its skeleton" if owner is None else f"parameter {owner!r}"
    others = f"; {len(missing) - 1} other object(s) are missing too" if len(missing) > 1 else ""
    if damaged:
        return ObjectCorrupt(
            oid,
            f"{path}: object {oid} of {what} is corrupt on the remote (its copy there does not match"
            f" its sha256) and is not in the local store{others}. Have the remote's copy deleted, then"
            " push it again from a repository with a good copy (`git theta fsck` there checks it)."
            " The file was not written.",
        )
    return ObjectMissing(
        oid,
        f"{path}: {len(missing)} object(s) missing, e.g. {oid} of {what}: not in the local store and"
        " not on the remote (was it pushed? is the remote reachable?). The file was not written.",
    )


def _warn(message: str) -> None:
    print(f"theta: warning: {message}", file=sys.stderr)
