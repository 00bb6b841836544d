"""The `onnx` checkpoint format: .onnx models, and the external data files they name."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from attrs import frozen

from theta.errors import FormatError
from theta.formats import Checkpoint, CheckpointFormat, Layout, Source
from theta.tensors import Tensor
from theta_format_onnx import dtypes as D
from theta_format_onnx import skeleton as S
from theta_format_onnx.external import find_model, read_data, write_data
from theta_format_onnx.rebuild import emit, plan
from theta_format_onnx.walk import Initializer, walk_model
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


def _tensors(handle: BinaryIO, initializers: list[Initializer]) -> Iterator[tuple[str, Tensor]]:
    try:
        for i in initializers:
            handle.seek(i.value_start)
            payload = handle.read(i.field_end - i.value_start)
            if i.field_number != D.RAW_DATA:
                payload = D.typed_to_raw(i.dtype, payload)
            yield i.name, Tensor(dtype=i.dtype, shape=i.shape, data=payload)
    finally:
        handle.close()


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
            index, body = S.model_index(buf, walk)
        skeleton = S.pack(S.MODEL, S.model_to_json(index), body)
        handle = open(spooled, "rb")  # noqa: SIM115 - closed by the generator
        return Checkpoint(skeleton=skeleton, parameters=_tensors(handle, walk.initializers))

    def write(self, layout: Layout, sink: BinaryIO) -> None:
        kind, raw, body = S.unpack(layout.skeleton)
        if kind == S.DATA:
            write_data(S.data_from_json(raw), body, layout, sink)
            return
        if kind != S.MODEL:
            raise FormatError(f"the stored ONNX skeleton has an unknown kind {kind!r}")
        index = S.model_from_json(raw)
        edits = plan(index, layout.parameters, layout.load, "the ONNX model")
        emit(body, edits, layout.load, sink)
