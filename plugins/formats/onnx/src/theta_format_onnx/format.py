"""The `onnx` checkpoint format: .onnx models, and the external data files they name.

A model's skeleton is the kernel's (`theta.splice`, kind `onnx-model`): the file without the
payloads of its initializers' data fields; `rebuild` writes it back. An external data file's
skeleton (kind `onnx-data`) is the data file without its tensors; see `external`.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any, BinaryIO

from attrs import frozen

from theta.errors import FormatError
from theta.formats import Checkpoint, CheckpointFormat, Layout, Source
from theta.splice import Region, cut, kind_of, read_tensors
from theta_format_onnx import dtypes as D
from theta_format_onnx.external import DATA_KIND, find_model, read_data, write_data
from theta_format_onnx.rebuild import MODEL_KIND, write_model
from theta_format_onnx.walk import ModelWalk, walk_model
from theta_format_onnx.wire import LEN, VARINT, WireError, read_varint

# ModelProto fields and their wire types; a file whose first bytes hold anything else is not a model.
MODEL_FIELDS = {1: VARINT, 2: LEN, 3: LEN, 4: LEN, 5: VARINT, 6: LEN, 7: LEN, 8: LEN, 14: LEN, 20: LEN, 25: LEN}
MAX_IR_VERSION = 64


def sniff_model(head: bytes) -> bool:
    """True when `head` starts like a serialized ModelProto: ir_version first, then model fields."""
    end = len(head)
    if head[:1] != b"\x08":
        return False
    try:
        ir_version, pos = read_varint(head, 1, end)
    except WireError:
        return False
    if not 1 <= ir_version <= MAX_IR_VERSION:
        return False
    try:
        while pos < end:
            key, pos = read_varint(head, pos, end)
            if MODEL_FIELDS.get(key >> 3) != key & 7:
                return False
            value, pos = read_varint(head, pos, end)
            if key & 7 == LEN:
                pos += value
    except WireError as exc:
        return end - exc.offset < 10
    return True


def _regions(walk: ModelWalk) -> tuple[list[Region], dict[str, Any]]:
    """One region per initializer: the payload of its data field (the field's tag and length stay).

    A region's `extra` says where its data field starts (`field_start`), which field it is,
    which container is its TensorProto, where the TensorProto's fields begin (`content`) and
    where its `dims` and `data_type` fields lie; the file-level `containers` are the length
    prefixes that enclose initializers, as [varint start, varint end, length, parent].
    """
    regions = [
        Region(
            name=i.name, dtype=i.dtype, shape=i.shape, offset=i.value_start, length=i.field_end - i.value_start,
            encoded=i.field_number != D.RAW_DATA,
            extra={
                "field": i.field_number, "field_start": i.field_start, "container": i.container.index,
                "content": i.content_start, "dims": [list(d) for d in i.dims_spans],
                "data_type": list(i.data_type_span),
            },
        )
        for i in walk.initializers
    ]  # fmt: skip
    containers = [
        [c.varint_start, c.varint_end, c.length, -1 if c.parent is None else c.parent.index] for c in walk.containers
    ]
    return regions, {"containers": containers}


def _decode(region: Region, raw: memoryview) -> bytes | memoryview:
    return D.typed_to_raw(region.dtype, bytes(raw)) if region.encoded else raw


@frozen
class OnnxFormat(CheckpointFormat):
    name = "onnx"
    extensions = (".onnx",)

    def sniff(self, head: bytes) -> bool:
        return sniff_model(head)

    def read(self, source: Source) -> Checkpoint:
        if not source.path.lower().endswith(".onnx"):
            found = find_model(source.path, Path.cwd())
            if found is not None:
                return read_data(source, *found)
        if not self.sniff(source.head):
            raise FormatError(
                f"{source.path}: not an ONNX model (it does not start with a ModelProto's ir_version field),"
                " nor an external data file that a .onnx file beside it names; if it is another format,"
                " set theta-format in .gitattributes"
            )
        return self._read_model(source)

    def _read_model(self, source: Source) -> Checkpoint:
        spooled = source.spool()
        with open(spooled, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                walk = walk_model(buf)
            except WireError as exc:
                raise FormatError(
                    f"{source.path}: not a valid ONNX model: {exc} (at byte {exc.offset} of {len(buf)});"
                    " the file is truncated or damaged"
                ) from None
            if not walk.has_graph:
                raise FormatError(f"{source.path}: not a valid ONNX model: it has no graph (ModelProto field 7)")
            regions, extra = _regions(walk)
            skeleton = cut(buf, regions, kind=MODEL_KIND, path=source.path, extra=extra)
        handle = open(spooled, "rb")  # noqa: SIM115 - closed by the iterator
        tensors = read_tensors(handle, skeleton.regions, path=source.path, decode=_decode, close=True)
        return Checkpoint(skeleton=skeleton.encode(), parameters=tensors)

    def write(self, layout: Layout, sink: BinaryIO) -> None:
        kind = kind_of(layout.skeleton)
        if kind == DATA_KIND:
            write_data(layout, sink)
        elif kind == MODEL_KIND:
            write_model(layout, sink)
        else:
            raise FormatError(
                f"{layout.path}: the stored skeleton is not an ONNX skeleton (kind {kind!r}, expected"
                f" {MODEL_KIND!r} or {DATA_KIND!r}); the object is damaged or belongs to another format"
            )
