"""The metadata file: what git stores in place of a checkpoint (spec: specs/metadata/v1).

A small, deterministic JSON document. For each parameter: dtype, shape, the sha256 of its
bytes, and the steps that rebuild it: a dense step first, then updates, each naming the
objects (Git LFS objects, by sha256 oid) that hold its arrays. Nothing refers to a commit.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from attrs import field, frozen

from theta.errors import SpecError
from theta.specfiles import make_converter, structure

METADATA_VERSION = "theta.metadata/1"
HASH_PREFIX = "sha256:"
_OID = re.compile(r"^[0-9a-f]{64}$")
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
CODECS = ("raw", "zstd", "zstd-grouped")


def _oid(_: Any, attribute: Any, value: str) -> None:
    if not _OID.match(value):
        raise ValueError(f"{attribute.name} must be 64 lower-case hex digits, got {value!r}")


def _hash(_: Any, attribute: Any, value: str) -> None:
    if not _HASH.match(value):
        raise ValueError(f"{attribute.name} must be 'sha256:' and 64 lower-case hex digits, got {value!r}")


def _one_of(*allowed: str) -> Any:
    def check(_: Any, attribute: Any, value: str) -> None:
        if value not in allowed:
            raise ValueError(f"{attribute.name} must be one of {', '.join(allowed)}, got {value!r}")

    return check


def _non_negative(_: Any, attribute: Any, value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value}")


# Bounds on what a metadata file may claim or contain (a remote can send any file).
MAX_NDIM = 64
MAX_ELEMENTS = 1 << 48
MAX_DEPTH = 32
MAX_METADATA_BYTES = 1 << 30


def _shape(_: Any, attribute: Any, value: tuple[int, ...]) -> None:
    if len(value) > MAX_NDIM:
        raise ValueError(f"{attribute.name} has {len(value)} dimensions, more than {MAX_NDIM}")
    numel = 1
    for d in value:
        if d < 0:
            raise ValueError(f"{attribute.name} {list(value)} has a negative dimension")
        numel *= d
    if numel > MAX_ELEMENTS:
        raise ValueError(f"{attribute.name} {list(value)} claims {numel} elements, more than {MAX_ELEMENTS}")


@frozen(kw_only=True)
class Blob:
    """An object holding opaque bytes (a checkpoint's skeleton)."""

    oid: str = field(validator=_oid)
    size: int = field(validator=_non_negative)


@frozen(kw_only=True)
class ArrayObject:
    """An object holding one array: its bytes, raw or compressed by `codec`."""

    oid: str = field(validator=_oid)
    size: int = field(validator=_non_negative)
    dtype: str
    shape: tuple[int, ...] = field(validator=_shape)
    codec: str = field(default="raw", validator=_one_of(*CODECS))


@frozen(kw_only=True)
class Step:
    """One link of a parameter's chain: an update and the hash of the tensor it yields."""

    update: str
    hash: str = field(validator=_hash)
    objects: dict[str, ArrayObject] = field(factory=dict)
    params: dict[str, Any] = field(factory=dict)


@frozen(kw_only=True)
class MergeRecord:
    """How a merge made this tensor: the strategy and its resolved options (never a commit)."""

    strategy: str
    options: dict[str, Any] = field(factory=dict)


@frozen(kw_only=True)
class Parameter:
    dtype: str
    shape: tuple[int, ...] = field(validator=_shape)
    hash: str = field(validator=_hash)
    steps: tuple[Step, ...]
    merge: MergeRecord | None = None

    def __attrs_post_init__(self) -> None:
        if not self.steps:
            raise ValueError("steps must not be empty")
        if self.steps[-1].hash != self.hash:
            raise ValueError("the last step's hash must equal the parameter's hash")


@frozen(kw_only=True)
class ObjectUse:
    """An object a checkpoint needs: its size, and the parameter needing it (None: the skeleton)."""

    size: int
    parameter: str | None

    def describe(self, path: str) -> str:
        return f"{path} (skeleton)" if self.parameter is None else f"{path}: parameter {self.parameter!r}"


@frozen(kw_only=True)
class Metadata:
    theta: str = field(validator=_one_of(METADATA_VERSION))
    format: str
    format_plugin: str | None = None
    skeleton: Blob | None = None
    parameters: dict[str, Parameter] = field(factory=dict)

    def objects(self) -> dict[str, ObjectUse]:
        """Every object this checkpoint needs, skeleton first, each once, with what needs it."""
        found: dict[str, ObjectUse] = {}
        if self.skeleton is not None:
            found[self.skeleton.oid] = ObjectUse(size=self.skeleton.size, parameter=None)
        for name, param in self.parameters.items():
            for step in param.steps:
                for record in step.objects.values():
                    found.setdefault(record.oid, ObjectUse(size=record.size, parameter=name))
        return found


_converter = make_converter()


def looks_like_metadata(head: bytes) -> bool:
    """True when `head` (a file's first bytes) starts a metadata file."""
    return head.lstrip()[:1] == b"{" and b'"theta": "theta.metadata/' in head[:256]


def loads_if_metadata(data: bytes | None, filename: str) -> Metadata | None:
    """`loads(data)` for a metadata file; None for no data or a file of another kind."""
    if data is None or not looks_like_metadata(data[:256]):
        return None
    return loads(data, filename)


def parse_json(data: bytes, filename: str, what: str = "a JSON file") -> Any:
    """A JSON document that may come from anyone: too large, too deeply nested or malformed is a `SpecError`."""
    if len(data) > MAX_METADATA_BYTES:
        raise SpecError(f"{filename}: not {what}: {len(data)} bytes, more than {MAX_METADATA_BYTES}")
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"{filename}: not {what}: {exc}") from None
    except RecursionError:
        raise SpecError(f"{filename}: not {what}: it is nested more than {MAX_DEPTH} levels deep") from None
    todo = [(raw, 1)]
    while todo:
        value, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise SpecError(f"{filename}: not {what}: it is nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            todo.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            todo.extend((v, depth + 1) for v in value)
    return raw


def loads(data: bytes, filename: str) -> Metadata:
    raw = parse_json(data, filename, "a Theta metadata file")
    if not isinstance(raw, dict):
        raise SpecError(f"{filename}: not a Theta metadata file: expected a JSON object")
    version = raw.get("theta")
    if version != METADATA_VERSION:
        raise SpecError(
            f"{filename}: theta: metadata version {version!r} is not supported by this version of"
            f" Theta (it reads {METADATA_VERSION!r}); upgrade theta-kernel"
        )
    return structure(_converter, raw, Metadata, filename)


def dumps(metadata: Metadata) -> bytes:
    """Deterministic serialisation: fixed key order, parameters in checkpoint order."""
    raw = _converter.unstructure(metadata)
    for optional in ("format_plugin", "skeleton"):
        if raw[optional] is None:
            del raw[optional]
    for param in raw["parameters"].values():
        param["shape"] = list(param["shape"])
        if param["merge"] is None:
            del param["merge"]
        for step in param["steps"]:
            if not step["params"]:
                del step["params"]
            for obj in step["objects"].values():
                obj["shape"] = list(obj["shape"])
    return (_pretty(raw, "") + "\n").encode()


def chain_digest(param: Parameter) -> str:
    """A digest of what a parameter is rebuilt from (its steps, dtype and shape) and the hash it
    must give: two entries share it exactly when they promise the same tensor from the same objects."""
    raw = {
        "dtype": param.dtype,
        "shape": list(param.shape),
        "hash": param.hash,
        "steps": _converter.unstructure(param.steps),
    }
    return hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _pretty(value: Any, indent: str) -> str:
    """JSON with nested objects spread over lines; flat objects and lists stay on one line."""
    inner = indent + "  "
    if isinstance(value, dict) and any(_nested(v) for v in value.values()):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_pretty(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and any(_nested(v) for v in value):
        return "[\n" + ",\n".join(inner + _pretty(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False)


def _nested(value: Any) -> bool:
    return isinstance(value, dict) or (isinstance(value, list) and any(_nested(v) for v in value))
