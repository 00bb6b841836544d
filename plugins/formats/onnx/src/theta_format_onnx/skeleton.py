"""The skeleton: `theta-onnx` magic, a kind byte, a JSON index, then the body.

For a model (kind `M`) the body is the .onnx file with every parameter's data field (tag,
length and payload) cut out; the index says where each one goes back, with the original
tag and length bytes, and lists the length prefixes that enclose them. For an external
data file (kind `D`) the body is the data file with the parameters' spans cut out (the
alignment padding between them stays), and the index says where each span goes back.
"""

from __future__ import annotations

import bisect
import json
import struct
from typing import Any

from attrs import frozen

from theta.errors import FormatError
from theta_format_onnx.walk import ModelWalk

MAGIC = b"theta-onnx\n"
MODEL = b"M"
DATA = b"D"
VERSION = 1


@frozen(kw_only=True)
class ContainerEntry:
    varint_start: int
    varint_end: int
    length: int
    parent: int  # -1: the ModelProto itself


@frozen(kw_only=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    field_number: int
    at: int  # where the data field goes back into the body
    header: bytes  # the field's original tag and length
    size: int  # the payload's original size
    container: int  # the TensorProto
    content: int  # first byte of the TensorProto's fields
    dims: tuple[tuple[int, int], ...]
    data_type: tuple[int, int]


@frozen(kw_only=True)
class ModelIndex:
    containers: tuple[ContainerEntry, ...]
    tensors: tuple[TensorEntry, ...]


@frozen(kw_only=True)
class SpanEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    at: int
    size: int


@frozen(kw_only=True)
class DataIndex:
    model: str  # the .onnx file that described this data file when it was read
    spans: tuple[SpanEntry, ...]


def model_index(buf: Any, walk: ModelWalk) -> tuple[ModelIndex, bytes]:
    """The index and body of a model: `buf` with each initializer's data field cut out."""
    cuts = [(i.field_start, i.field_end) for i in walk.initializers]
    ends = [e for _, e in cuts]
    removed = [0]
    for s, e in cuts:
        removed.append(removed[-1] + e - s)

    def body(x: int) -> int:
        return x - removed[bisect.bisect_right(ends, x)]

    pieces = []
    position = 0
    for s, e in cuts:
        pieces.append(buf[position:s])
        position = e
    pieces.append(buf[position:])
    containers = tuple(
        ContainerEntry(
            varint_start=body(c.varint_start),
            varint_end=body(c.varint_end),
            length=c.length,
            parent=-1 if c.parent is None else c.parent.index,
        )
        for c in walk.containers
    )
    tensors = tuple(
        TensorEntry(
            name=i.name, dtype=i.dtype, shape=i.shape, field_number=i.field_number, at=body(i.field_start),
            header=bytes(buf[i.field_start : i.value_start]), size=i.field_end - i.value_start,
            container=i.container.index, content=body(i.content_start),
            dims=tuple((body(s), body(e)) for s, e in i.dims_spans),
            data_type=(body(i.data_type_span[0]), body(i.data_type_span[1])),
        )
        for i in walk.initializers
    )  # fmt: skip
    return ModelIndex(containers=containers, tensors=tensors), b"".join(bytes(p) for p in pieces)


def pack(kind: bytes, index: dict[str, Any], body: bytes) -> bytes:
    raw = json.dumps({"version": VERSION, **index}, separators=(",", ":")).encode()
    return MAGIC + kind + struct.pack("<Q", len(raw)) + raw + body


def unpack(skeleton: bytes) -> tuple[bytes, dict[str, Any], memoryview]:
    head = len(MAGIC) + 1 + 8
    if len(skeleton) < head or not skeleton.startswith(MAGIC):
        raise FormatError("the stored skeleton is not an ONNX skeleton (it lacks the theta-onnx magic)")
    kind = skeleton[len(MAGIC) : len(MAGIC) + 1]
    (size,) = struct.unpack("<Q", skeleton[len(MAGIC) + 1 : head])
    try:
        index = json.loads(skeleton[head : head + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"the stored ONNX skeleton's index is not valid JSON: {exc}") from None
    if index.get("version") != VERSION:
        raise FormatError(
            f"the stored ONNX skeleton has version {index.get('version')}; this theta-format-onnx reads"
            f" version {VERSION}: upgrade theta-format-onnx"
        )
    return kind, index, memoryview(skeleton)[head + size :]


def model_to_json(index: ModelIndex) -> dict[str, Any]:
    return {
        "containers": [[c.varint_start, c.varint_end, c.length, c.parent] for c in index.containers],
        "tensors": [
            {"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "field": t.field_number, "at": t.at,
             "header": t.header.hex(), "size": t.size, "container": t.container, "content": t.content,
             "dims": [list(d) for d in t.dims], "data_type": list(t.data_type)}
            for t in index.tensors
        ],
    }  # fmt: skip


def model_from_json(raw: dict[str, Any]) -> ModelIndex:
    try:
        return ModelIndex(
            containers=tuple(
                ContainerEntry(varint_start=s, varint_end=e, length=n, parent=p) for s, e, n, p in raw["containers"]
            ),
            tensors=tuple(
                TensorEntry(
                    name=t["name"], dtype=t["dtype"], shape=tuple(t["shape"]), field_number=t["field"], at=t["at"],
                    header=bytes.fromhex(t["header"]), size=t["size"], container=t["container"],
                    content=t["content"], dims=tuple((s, e) for s, e in t["dims"]),
                    data_type=(t["data_type"][0], t["data_type"][1]),
                )
                for t in raw["tensors"]
            ),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"the stored ONNX skeleton's index is malformed: {exc!r}") from None


def data_to_json(index: DataIndex) -> dict[str, Any]:
    return {
        "model": index.model,
        "spans": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape), "at": s.at, "size": s.size}
                  for s in index.spans],
    }  # fmt: skip


def data_from_json(raw: dict[str, Any]) -> DataIndex:
    try:
        return DataIndex(
            model=raw["model"],
            spans=tuple(
                SpanEntry(name=s["name"], dtype=s["dtype"], shape=tuple(s["shape"]), at=s["at"], size=s["size"])
                for s in raw["spans"]
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"the stored ONNX skeleton's index is malformed: {exc!r}") from None
