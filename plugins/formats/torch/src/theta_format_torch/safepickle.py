"""A restricted reader for `data.pkl`: containers, plain values and tensor descriptions only.

`torch.save` pickles a state dict with a handful of globals: tensors are rebuilt through
`torch._utils._rebuild_tensor_v2` from storages that arrive as persistent ids. This reader
maps exactly those globals to inert placeholders (`TensorRef`, `StorageRef`, ...) and refuses
every other global before anything is called, so no code that arrives with a file ever runs.
The placeholders carry what a writer needs to recreate the real objects with torch.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from attrs import frozen

STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
}  # fmt: skip

# Canonical torch dtype names (what a pickled `torch.dtype` is called) and their Theta names.
TORCH_DTYPES = {
    "float32": "float32", "float64": "float64", "float16": "float16", "bfloat16": "bfloat16",
    "int64": "int64", "int32": "int32", "int16": "int16", "int8": "int8", "uint8": "uint8",
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "bool": "bool",
    "complex64": "complex64", "complex128": "complex128",
    "float8_e4m3fn": "float8_e4m3fn", "float8_e5m2": "float8_e5m2",
}  # fmt: skip
THETA_TO_TORCH = {theta: torch_name for torch_name, theta in TORCH_DTYPES.items()}

UNSUPPORTED_TENSORS = {
    ("torch._utils", "_rebuild_qtensor"): "quantized tensors",
    ("torch._utils", "_rebuild_sparse_tensor"): "sparse tensors",
    ("torch._utils", "_rebuild_sparse_csr"): "sparse tensors",
    ("torch._utils", "_rebuild_nested_tensor"): "nested tensors",
    ("torch._utils", "_rebuild_wrapper_subclass"): "tensor subclasses",
    ("torch._utils", "_rebuild_meta_tensor_no_storage"): "meta tensors",
    ("torch._utils", "_rebuild_device_tensor_from_numpy"): "tensors saved from NumPy arrays on a device",
    ("torch._utils", "_rebuild_tensor"): "tensors in the pre-1.0 pickle layout",
    ("torch._tensor", "_rebuild_from_type_v2"): "tensor subclasses",
    ("torch._tensor", "_rebuild_from_type"): "tensor subclasses",
}


class Refused(Exception):
    """`data.pkl` names a global that a checkpoint may not use; `what` names it."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what = what
        self.reason = reason


@frozen(kw_only=True)
class StorageType:
    """The storage class (or dtype) a persistent id names."""

    dtype: str


@frozen(kw_only=True)
class DTypeRef:
    """A `torch.dtype` value stored in the checkpoint (by its torch name)."""

    name: str


@frozen(kw_only=True)
class DeviceRef:
    """A `torch.device` value stored in the checkpoint."""

    args: tuple[Any, ...]


class SizeRef(tuple):  # type: ignore[type-arg]
    """A `torch.Size` value stored in the checkpoint."""

    __slots__ = ()


@frozen(kw_only=True, eq=False)
class StorageRef:
    """A storage: its record key in `data/`, dtype, element count and original device."""

    key: str
    dtype: str
    numel: int
    location: str


@frozen(kw_only=True, eq=False)
class TensorRef:
    """What `_rebuild_tensor_v2` would build: a strided view of a storage."""

    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    requires_grad: bool
    hooks: Any
    metadata: Any

    @property
    def numel(self) -> int:
        n = 1
        for d in self.size:
            n *= d
        return n

    def covers_storage(self) -> bool:
        """True when this tensor is the whole storage, contiguous in C order."""
        if self.offset != 0 or self.numel != self.storage.numel:
            return False
        expected = 1
        for dim, step in zip(reversed(self.size), reversed(self.stride), strict=True):
            if dim != 1 and step != expected:
                return False
            expected *= dim
        return True


@frozen(kw_only=True, eq=False)
class ParameterRef:
    """What `_rebuild_parameter` would build: an `nn.Parameter` around a tensor."""

    tensor: TensorRef
    requires_grad: bool
    hooks: Any
    state: Any = None


class _Damaged(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise _Damaged(f"tensor {what} must be a tuple of integers, got {value!r}")
    return tuple(value)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                    hooks: Any = None, metadata: Any = None) -> TensorRef:  # fmt: skip
    if not isinstance(storage, StorageRef):
        raise _Damaged(f"a tensor is built from {type(storage).__name__}, not a storage")
    if not isinstance(offset, int) or offset < 0:
        raise _Damaged(f"tensor storage offset must be a non-negative integer, got {offset!r}")
    tensor = TensorRef(
        storage=storage,
        offset=offset,
        size=_int_tuple(size, "size"),
        stride=_int_tuple(stride, "stride"),
        requires_grad=bool(requires_grad),
        hooks=hooks,
        metadata=metadata,
    )
    if len(tensor.size) != len(tensor.stride) or any(d < 0 for d in tensor.size + tensor.stride):
        raise _Damaged(f"tensor size {list(tensor.size)} and stride {list(tensor.stride)} do not fit")
    if tensor.numel:
        last = offset + sum((d - 1) * s for d, s in zip(tensor.size, tensor.stride, strict=True))
        if last >= storage.numel:
            raise _Damaged(f"a tensor reaches element {last} of storage {storage.key!r}, which has {storage.numel}")
    return tensor


def _rebuild_parameter(tensor: Any, requires_grad: Any = True, hooks: Any = None) -> ParameterRef:
    if not isinstance(tensor, TensorRef):
        raise _Damaged(f"a parameter wraps {type(tensor).__name__}, not a tensor")
    return ParameterRef(tensor=tensor, requires_grad=bool(requires_grad), hooks=hooks)


def _rebuild_parameter_with_state(tensor: Any, requires_grad: Any, hooks: Any, state: Any) -> ParameterRef:
    parameter = _rebuild_parameter(tensor, requires_grad, hooks)
    return ParameterRef(tensor=parameter.tensor, requires_grad=parameter.requires_grad, hooks=hooks, state=state)


def _size(dims: Any = ()) -> SizeRef:
    return SizeRef(_int_tuple(tuple(dims), "torch.Size"))


def _device(*args: Any) -> DeviceRef:
    if not all(isinstance(a, (str, int)) for a in args):
        raise _Damaged(f"torch.device arguments must be strings or integers, got {args!r}")
    return DeviceRef(args=args)


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise _Damaged(f"bytes must be pickled as _codecs.encode(str, 'latin1'), got encoding {encoding!r}")
    return text.encode(encoding)


def _refuse_state(self: Any, state: Any) -> None:
    raise _Damaged(f"data.pkl sets the state of a {type(self).__name__} (pickle BUILD), which torch.save never does")


# The pickle BUILD opcode may set the state of the object below it. torch.save uses it on
# OrderedDicts only (a state dict's `_metadata`); on a placeholder or on one of the callables
# below it would bypass their checks, or change them for the files that follow.
for _placeholder in (StorageType, DTypeRef, DeviceRef, StorageRef, TensorRef, ParameterRef):
    _placeholder.__setstate__ = _refuse_state  # type: ignore[attr-defined]


class _Call:
    """One of the callables `data.pkl` may name: called as itself, its state never set."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)

    __setstate__ = _refuse_state


ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _Call(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _Call(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Call(_rebuild_parameter_with_state),
    ("torch", "Size"): _Call(_size),
    ("torch", "device"): _Call(_device),
    ("_codecs", "encode"): _Call(_encode),
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.storages: dict[str, StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED.get((module, name))
        if found is not None:
            return found
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(dtype=STORAGE_DTYPES[name])
        if module in ("torch", "torch.storage") and name == "UntypedStorage":
            return StorageType(dtype="uint8")
        if module == "torch" and name in TORCH_DTYPES:
            return DTypeRef(name=name)
        what = f"{module}.{name}"
        if (module, name) in UNSUPPORTED_TENSORS:
            raise Refused(what, f"{UNSUPPORTED_TENSORS[module, name]} are not supported")
        raise Refused(what, "only tensors, containers and plain values may be loaded")

    def persistent_load(self, pid: Any) -> StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise _Damaged(f"unknown persistent id {pid!r}")
        _, kind, key, location, numel = pid
        if isinstance(kind, DTypeRef):
            kind = StorageType(dtype=TORCH_DTYPES[kind.name])
        if not isinstance(kind, StorageType) or not isinstance(key, str) or not isinstance(location, str):
            raise _Damaged(f"malformed storage reference {pid!r}")
        if not isinstance(numel, int) or numel < 0:
            raise _Damaged(f"storage {key!r} has an invalid element count {numel!r}")
        known = self.storages.get(key)
        if known is None:
            known = self.storages[key] = StorageRef(key=key, dtype=kind.dtype, numel=numel, location=location)
        elif (known.dtype, known.numel) != (kind.dtype, numel):
            raise _Damaged(f"storage {key!r} is referenced with two different dtypes or sizes")
        return known


class DamagedPickle(Exception):
    """`data.pkl` is not a pickle this reader understands; the message says why."""


def load(data: bytes) -> tuple[Any, dict[str, StorageRef]]:
    """The object tree of `data.pkl` with placeholders, and its storages by key.

    Raises `Refused` for a forbidden global and `DamagedPickle` for anything else wrong.
    """
    unpickler = _Unpickler(data)
    try:
        tree = unpickler.load()
    except Refused:
        raise
    except _Damaged as exc:
        raise DamagedPickle(exc.message) from None
    except Exception as exc:
        raise DamagedPickle(f"{type(exc).__name__}: {exc}") from None
    return tree, unpickler.storages
