"""Write a model back from its skeleton: splice each initializer's payload back into its data field.

When every parameter keeps its dtype and shape and every data field is `raw_data`, the kernel's
splice puts the payloads back and the output is the original file. Otherwise each payload goes
back as it is encoded now: a typed field is encoded again from the tensor (its size may change
with the values), and a parameter whose dtype or shape changed gets new `dims` and `data_type`
fields and its data as `raw_data`. A data field whose size changed gets a new tag and length,
and every length prefix that encloses it is recomputed, innermost first. All of these are
edits of the skeleton's kept bytes, which the kernel applies while it writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, BinaryIO

import attrs
from attrs import frozen

from theta.errors import FormatError
from theta.formats import Layout, TensorInfo
from theta.splice import Edit, Region, Skeleton, nbytes, reading_extra, splice
from theta.tensors import Tensor
from theta_format_onnx import dtypes as D
from theta_format_onnx.wire import LEN, VARINT, encode_tag, encode_varint

MODEL_KIND = "onnx-model"


@frozen(kw_only=True)
class Container:
    """A length prefix (`varint_start:varint_end` of the file) that encloses initializers."""

    varint_start: int
    varint_end: int
    length: int
    parent: int  # -1: the ModelProto itself


@frozen(kw_only=True)
class Field:
    """Where an initializer's fields lie in the file, besides its payload (the region)."""

    number: int
    start: int  # the data field's tag
    container: int  # the TensorProto
    content: int  # first byte of the TensorProto's fields
    dims: tuple[tuple[int, int], ...]
    data_type: tuple[int, int]


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    return value


def _pair(value: Any) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"{value!r} is not a [start, end] pair")
    return _int(value[0]), _int(value[1])


def _structure(skeleton: Skeleton) -> tuple[list[Container], dict[str, Field]]:
    """This format's fields of the skeleton's index, checked."""
    with reading_extra(skeleton.path):
        containers = []
        for i, raw in enumerate(skeleton.extra["containers"]):
            varint_start, varint_end, length, parent = (_int(v) for v in raw)
            if not -1 <= parent < i:
                raise ValueError(f"container {i} has parent {parent}")
            containers.append(Container(varint_start=varint_start, varint_end=varint_end, length=length, parent=parent))
        fields = {}
        for r in skeleton.regions:
            x = r.extra
            field = Field(
                number=_int(x["field"]), start=_int(x["field_start"]), container=_int(x["container"]),
                content=_int(x["content"]), dims=tuple(_pair(d) for d in x["dims"]), data_type=_pair(x["data_type"]),
            )  # fmt: skip
            if not 0 <= field.container < len(containers) or field.start > r.offset:
                raise ValueError(f"parameter {r.name!r}: container {field.container}, data field at {field.start}")
            if r.encoded != (field.number != D.RAW_DATA) or (r.encoded and r.dtype not in D.TYPED_FIELDS):
                raise ValueError(f"parameter {r.name!r}: field {field.number} does not hold {r.dtype}")
            fields[r.name] = field
    return containers, fields


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


class _Plan:
    """The edits that turn the body back into a model holding the layout's parameters."""

    def __init__(self, skeleton: Skeleton, layout: Layout) -> None:
        self.layout = layout
        self.edits: list[Edit] = []
        self.payloads: dict[str, bytes] = {}  # typed payloads, encoded while planning
        self.loaded: dict[str, Tensor] = {}
        containers, fields = _structure(skeleton)
        delta = [0] * len(containers)
        for region in skeleton.regions:
            field = fields[region.name]
            delta[field.container] += self._tensor(region, field, layout.parameters[region.name])
        for i in range(len(containers) - 1, -1, -1):
            c = containers[i]
            if not delta[i]:
                continue
            varint = encode_varint(c.length + delta[i])
            self.edits.append(Edit(start=c.varint_start, end=c.varint_end, data=varint))
            if c.parent >= 0:
                delta[c.parent] += delta[i] + len(varint) - (c.varint_end - c.varint_start)

    def _tensor(self, region: Region, field: Field, info: TensorInfo) -> int:
        """Plan the edits of one initializer; return how much its TensorProto grows."""
        old_size = region.end - field.start
        if info == region.info:
            if not region.encoded:
                return 0
            tensor = self.loaded[region.name] = self.layout.load(region.name)
            payload = self.payloads[region.name] = D.raw_to_typed(region.dtype, tensor.data)
            if len(payload) == region.length:
                return 0
            header = encode_tag(field.number, LEN) + encode_varint(len(payload))
            self.edits.append(Edit(start=field.start, end=region.offset, data=header))
            return len(header) + len(payload) - old_size
        if info.dtype not in D.THETA_TO_ONNX:
            raise FormatError(
                f"{self.layout.path}: parameter {region.name!r}: ONNX has no element type for {info.dtype}"
            )
        size = nbytes(info.dtype, info.shape)
        header = encode_tag(D.RAW_DATA, LEN) + encode_varint(size)
        dims, data_type = _shape_fields(info)
        self.edits.append(Edit(start=field.start, end=region.offset, data=header))
        spans = list(field.dims) or [(field.content, field.content)]
        self.edits.append(Edit(start=spans[0][0], end=spans[0][1], data=dims))
        self.edits.extend(Edit(start=s, end=e) for s, e in spans[1:])
        self.edits.append(Edit(start=field.data_type[0], end=field.data_type[1], data=data_type))
        old_fields = sum(e - s for s, e in field.dims) + field.data_type[1] - field.data_type[0]
        return len(header) + size - old_size + len(dims) + len(data_type) - old_fields

    def load(self, name: str) -> Tensor:
        return self.loaded.pop(name) if name in self.loaded else self.layout.load(name)

    def encode(self, region: Region, tensor: Tensor) -> bytes | memoryview:
        if region.name in self.payloads:
            return self.payloads.pop(region.name)
        info = self.layout.parameters[region.name]
        if TensorInfo(dtype=tensor.dtype, shape=tensor.shape) != info:
            raise FormatError(
                f"{self.layout.path}: parameter {region.name!r}: loaded {tensor.dtype} {list(tensor.shape)},"
                f" its layout says {info.dtype} {list(info.shape)}"
            )
        return tensor.data


def write_model(layout: Layout, sink: BinaryIO) -> None:
    skeleton = Skeleton.decode(layout.skeleton, kind=MODEL_KIND, path=layout.path)
    check_names(layout.path, [r.name for r in skeleton.regions], layout.parameters)
    if skeleton.matches(layout.parameters) and not any(r.encoded for r in skeleton.regions):
        splice(skeleton, layout, sink)
        return
    plan = _Plan(skeleton, layout)
    splice(skeleton, attrs.evolve(layout, load=plan.load), sink, encode=plan.encode, edits=plan.edits)
