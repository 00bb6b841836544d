"""Parameters as objects: an update's arrays become objects, and a chain of steps a tensor."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from attrs import frozen

from theta.errors import ObjectCorrupt, ObjectMissing, ThetaError
from theta.formats import TensorInfo
from theta.metadata import HASH_PREFIX, ArrayObject, Parameter, Step, chain_digest
from theta.plugins import Registry
from theta.store import codecs
from theta.store.objects import ObjectStore
from theta.tensors import Tensor, dtype
from theta.updates import Update


@frozen(kw_only=True)
class PackedArray:
    """An array ready to store: its bytes after the codec, and the record naming it."""

    data: bytes | memoryview
    record: ArrayObject


@frozen(kw_only=True)
class PackedUpdate:
    update: str
    params: Mapping[str, object]
    arrays: Mapping[str, PackedArray]

    @property
    def stored_size(self) -> int:
        return sum(a.record.size for a in self.arrays.values())


class ParameterStore:
    def __init__(self, store: ObjectStore, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    # -- writing ---------------------------------------------------------------------------

    def pack(
        self, name: str, update: Update, whole: Tensor | None = None, whole_hash: str | None = None
    ) -> PackedUpdate:
        """Compress an update's arrays (computing their oids) without storing anything yet.

        `whole` is the tensor itself when the update stores it (a root of a chain): an array
        that is that tensor is stored `zstd-grouped` where that pays, else raw, so that its
        object's oid is `whole_hash`, the tensor's own sha256, and costs no second hash.
        """
        arrays = {}
        for key, array in update.arrays.items():
            if whole is not None and array is whole and whole_hash is not None:
                codec, data = codecs.encode_dense(array.data, dtype(array.dtype).itemsize)
                oid = whole_hash.removeprefix(HASH_PREFIX) if codec == "raw" else hashlib.sha256(data).hexdigest()
            else:
                codec, data = codecs.encode(array.data)
                oid = hashlib.sha256(data).hexdigest()
            record = ArrayObject(oid=oid, size=len(data), dtype=array.dtype, shape=array.shape, codec=codec)
            arrays[key] = PackedArray(data=data, record=record)
        return PackedUpdate(update=name, params=dict(update.params), arrays=arrays)

    def save(self, packed: PackedUpdate, tensor_hash: str) -> Step:
        for array in packed.arrays.values():
            self.store.put(array.data, oid=array.record.oid)
        return Step(
            update=packed.update,
            hash=tensor_hash,
            objects={k: a.record for k, a in packed.arrays.items()},
            params=dict(packed.params),
        )

    # -- reading ---------------------------------------------------------------------------

    def load_array(self, record: ArrayObject, verify: bool = True) -> Tensor:
        """An array from its object. `verify=False` skips the object's own sha256: only for an
        array whose decoded bytes are checked against a hash afterwards, or an object the store
        vouched for (`_load`). An object that is decoded (not `raw`) is then read through a
        mapping, without a copy."""
        numel = 1
        for d in record.shape:
            numel *= d
        itemsize = dtype(record.dtype).itemsize
        if record.codec == "raw":
            raw = self.store.read(record.oid, record.size, check=verify)
        elif verify:
            raw = codecs.decode(record.codec, self.store.read(record.oid, record.size), numel * itemsize, itemsize)
        else:
            with self.store.mapped(record.oid) as data:
                if len(data) != record.size:
                    self.store.read(record.oid, record.size)  # raises ObjectCorrupt and removes the copy
                raw = codecs.decode(record.codec, data, numel * itemsize, itemsize)
        return Tensor(dtype=record.dtype, shape=record.shape, data=raw)

    def remember(self, param: Parameter) -> None:
        """Record that `param`'s chain rebuilds its tensor: it was just stored from that tensor."""
        self.store.note_decoding(chain_digest(param))

    def load(self, param: Parameter, path: str, name: str, recheck: bool = False) -> Tensor:
        """Rebuild a parameter from its chain and check it against its hash.

        A chain recorded as rebuilding its tensor (`ObjectStore.known_decoding`) whose objects'
        files are all unchanged since this repository verified or wrote them is rebuilt without
        hashing anything, unless `recheck`: as git trusts a file its index saw unchanged.
        """
        try:
            digest = chain_digest(param)
            if not recheck and self._vouched_for(param, digest):
                try:
                    return _same_layout(param, self._rebuild(param, verify=False)[0])
                except ThetaError:
                    recheck = True  # a file damaged in place: the checked reading below finds it and removes it
            try:
                tensor = self._load(param, recheck)
            except ThetaError as exc:
                if recheck or isinstance(exc, (ObjectMissing, ObjectCorrupt)):  # a damaged copy found is gone already
                    raise
                tensor = self._load(param, recheck=True)  # an object trusted by its record may be the damaged one
            self.store.note_decoding(digest)
            return tensor
        except (ObjectMissing, ObjectCorrupt) as exc:
            raise type(exc)(exc.oid, f"{path}: parameter {name!r}: {exc}") from None
        except ThetaError as exc:
            raise ThetaError(f"{path}: parameter {name!r}: {exc}") from None

    def _vouched_for(self, param: Parameter, digest: str) -> bool:
        store = self.store
        return store.known_decoding(digest) and all(
            store.unchanged_since_verified(record.oid, record.size)
            for step in param.steps
            for record in step.objects.values()
        )

    def _rebuild(self, param: Parameter, verify: bool, recheck: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        """The tensor the chain decodes to, and the last step's arrays; its hash is the caller's to check.

        With `verify`, each object is checked against its oid, unless its file is unchanged since
        this repository verified it (and not `recheck`).
        """
        info = TensorInfo(dtype=param.dtype, shape=param.shape)
        tensor: Tensor | None = None
        arrays: dict[str, Tensor] = {}
        store = self.store
        for step in param.steps:
            arrays = {
                key: self.load_array(
                    record,
                    verify=verify and (recheck or not store.unchanged_since_verified(record.oid, record.size)),
                )
                for key, record in step.objects.items()
            }
            update_type = self.registry.update_type(step.update)
            tensor = update_type.decode(Update(arrays=arrays, params=step.params), tensor, info)
        assert tensor is not None
        return tensor, arrays

    def _load(self, param: Parameter, recheck: bool = False) -> Tensor:
        # A tensor stored whole and compressed is checked once, by its own hash after decoding,
        # rather than also by its object's sha256; a mismatch then looks at the object.
        whole = self._compressed_whole(param)
        try:
            tensor, arrays = self._rebuild(param, verify=whole is None, recheck=recheck)
        except ObjectCorrupt:
            raise  # the copy is gone already
        except ThetaError:
            if whole is not None:
                self.store.read(whole.oid, whole.size)  # a damaged object: ObjectCorrupt, and the copy goes
            raise
        if not self._verified_by_store(param, tensor, arrays) and HASH_PREFIX + tensor.sha256() != param.hash:
            if whole is not None:
                self.store.read(whole.oid, whole.size)
            raise ThetaError(f"rebuilt tensor does not match its hash {param.hash}; the objects are inconsistent")
        if whole is not None:
            self.store.vouch(whole.oid)
        return _same_layout(param, tensor)

    @staticmethod
    def _compressed_whole(param: Parameter) -> ArrayObject | None:
        """The one object of a one-step chain when it holds the tensor compressed whole."""
        if len(param.steps) != 1 or len(param.steps[0].objects) != 1:
            return None
        (record,) = param.steps[0].objects.values()
        if record.codec != codecs.GROUPED or (record.dtype, record.shape) != (param.dtype, param.shape):
            return None
        return record

    @staticmethod
    def _verified_by_store(param: Parameter, tensor: Tensor, arrays: Mapping[str, Tensor]) -> bool:
        """True when the tensor is, unchanged, a raw object whose oid is the parameter's hash.

        The store checked that object's sha256 when it read it, or its file is unchanged since it
        was checked (`_rebuild`), so hashing again is not needed.
        """
        last = param.steps[-1]
        oid = param.hash.removeprefix(HASH_PREFIX)
        return any(
            arrays.get(key) is tensor and record.codec == "raw" and record.oid == oid
            for key, record in last.objects.items()
        )


def _same_layout(param: Parameter, tensor: Tensor) -> Tensor:
    if tensor.dtype != param.dtype or tensor.shape != param.shape:
        raise ThetaError(
            f"rebuilt tensor is {tensor.dtype} {list(tensor.shape)}, expected {param.dtype} {list(param.shape)}"
        )
    return tensor
