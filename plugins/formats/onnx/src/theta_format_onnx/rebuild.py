"""Write a model back from its skeleton: splice each parameter's data field into the body.

When every parameter keeps its dtype, shape and encoded size, each field goes back with its
original tag and length bytes and the output is the original file. Otherwise the changed
initializers are re-encoded (new dims and data_type, the data as raw_data) and every length
prefix that encloses them is recomputed, innermost first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import BinaryIO

from attrs import frozen

from theta.errors import FormatError
from theta.formats import TensorInfo
from theta.tensors import Tensor, dtype
from theta_format_onnx import dtypes as D
from theta_format_onnx.skeleton import ModelIndex, TensorEntry
from theta_format_onnx.wire import LEN, VARINT, encode_tag, encode_varint


@frozen(kw_only=True)
class Edit:
    """Replace `body[start:end]` with `data`, or with the data field of parameter `name`."""

    start: int
    end: int
    data: bytes = b""
    name: str | None = None
    header: bytes = b""
    payload: bytes | None = None  # an encoded typed payload, already in memory
    size: int = 0  # the payload size `load(name)` must give when `payload` is None


def check_names(path: str, stored: list[str], wanted: Mapping[str, TensorInfo]) -> None:
    missing = [n for n in stored if n not in wanted]
    extra = [n for n in wanted if n not in set(stored)]
    if missing or extra:
        raise FormatError(
            f"{path}: the parameters no longer match the model's initializers (missing: {missing[:5]},"
            f" new: {extra[:5]}); an ONNX graph names the initializers it uses, so they cannot be added or"
            " dropped here: export the model again from its framework"
        )


def _shape_fields(info: TensorInfo) -> tuple[bytes, bytes]:
    dims = b"".join(encode_tag(D.DIMS, VARINT) + encode_varint(d) for d in info.shape)
    return dims, encode_tag(D.DATA_TYPE, VARINT) + encode_varint(D.THETA_TO_ONNX[info.dtype])


def plan(
    index: ModelIndex, parameters: Mapping[str, TensorInfo], load: Callable[[str], Tensor], path: str
) -> list[Edit]:
    """The edits that turn the body back into a model holding `parameters`."""
    check_names(path, [t.name for t in index.tensors], parameters)
    delta = [0] * len(index.containers)
    edits: list[Edit] = []
    for t in index.tensors:
        info = parameters[t.name]
        edits.extend(_tensor_edits(t, info, load, delta))
    for i in range(len(index.containers) - 1, -1, -1):
        c = index.containers[i]
        if not delta[i]:
            continue
        varint = encode_varint(c.length + delta[i])
        edits.append(Edit(start=c.varint_start, end=c.varint_end, data=varint))
        if c.parent >= 0:
            delta[c.parent] += delta[i] + len(varint) - (c.varint_end - c.varint_start)
    edits.sort(key=lambda e: (e.start, e.end))
    return edits


def _tensor_edits(t: TensorEntry, info: TensorInfo, load: Callable[[str], Tensor], delta: list[int]) -> list[Edit]:
    old_size = len(t.header) + t.size
    if info.dtype == t.dtype and tuple(info.shape) == t.shape:
        if t.field_number == D.RAW_DATA:
            return [Edit(start=t.at, end=t.at, name=t.name, header=t.header, size=t.size)]
        payload = D.raw_to_typed(t.dtype, load(t.name).data)
        header = t.header if len(payload) == t.size else encode_tag(t.field_number, LEN) + encode_varint(len(payload))
        delta[t.container] += len(header) + len(payload) - old_size
        return [Edit(start=t.at, end=t.at, name=t.name, header=header, payload=payload)]
    if info.dtype not in D.THETA_TO_ONNX:
        raise FormatError(f"parameter {t.name!r}: ONNX has no element type for dtype {info.dtype}")
    nbytes = dtype(info.dtype).itemsize
    for d in info.shape:
        nbytes *= d
    header = encode_tag(D.RAW_DATA, LEN) + encode_varint(nbytes)
    dims, data_type = _shape_fields(info)
    edits = [Edit(start=t.at, end=t.at, name=t.name, header=header, size=nbytes)]
    spans = list(t.dims) or [(t.content, t.content)]
    edits.append(Edit(start=spans[0][0], end=spans[0][1], data=dims))
    edits.extend(Edit(start=s, end=e) for s, e in spans[1:])
    edits.append(Edit(start=t.data_type[0], end=t.data_type[1], data=data_type))
    old_fields = sum(e - s for s, e in t.dims) + t.data_type[1] - t.data_type[0]
    delta[t.container] += len(header) + nbytes - old_size + len(dims) + len(data_type) - old_fields
    return edits


def emit(body: memoryview, edits: list[Edit], load: Callable[[str], Tensor], sink: BinaryIO) -> None:
    cursor = 0
    for e in edits:
        if e.start < cursor:
            raise FormatError("the stored ONNX skeleton's index has overlapping spans; it is corrupt")
        sink.write(body[cursor : e.start])
        if e.name is None:
            sink.write(e.data)
        else:
            sink.write(e.header)
            if e.payload is not None:
                sink.write(e.payload)
            else:
                data = load(e.name).data
                if len(data) != e.size:
                    raise FormatError(f"parameter {e.name!r}: loaded {len(data)} bytes where its layout needs {e.size}")
                sink.write(data)
        cursor = e.end
    sink.write(body[cursor:])
