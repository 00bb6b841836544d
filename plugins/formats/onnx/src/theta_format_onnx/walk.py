"""Find the initializers of an ONNX model by walking its protobuf fields.

The walk descends ModelProto.graph (7) -> GraphProto.initializer (5), and into the
subgraphs of control-flow nodes: GraphProto.node (1) -> NodeProto.attribute (5) ->
AttributeProto.g (6) / graphs (11). Every other field is left alone. For each initializer it
records where its data field lies in the file and every length prefix that encloses it
(its "containers"), so a rebuild can splice tensor bytes back and fix lengths that change.
"""

from __future__ import annotations

from attrs import define, field, frozen

from theta.tensors import dtype
from theta_format_onnx import dtypes as D
from theta_format_onnx.wire import LEN, VARINT, Buffer, Field, WireError, iter_fields, read_varint

MODEL_GRAPH = 7
GRAPH_NODE = 1
GRAPH_INITIALIZER = 5
NODE_ATTRIBUTE = 5
ATTRIBUTE_GRAPH = 6
ATTRIBUTE_GRAPHS = 11


@define
class Container:
    """A length-delimited field that encloses at least one initializer's data."""

    varint_start: int
    varint_end: int
    length: int
    parent: Container | None
    index: int = -1


@frozen(kw_only=True)
class Initializer:
    """An initializer whose data is a parameter: raw_data, or one packed typed field."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    field_number: int  # RAW_DATA or the typed field
    field_start: int  # the data field's tag
    value_start: int  # its payload
    field_end: int
    container: Container  # the TensorProto itself
    content_start: int  # first byte of the TensorProto's fields
    dims_spans: tuple[tuple[int, int], ...]
    data_type_span: tuple[int, int]


@frozen(kw_only=True)
class ExternalRef:
    """An initializer whose data lives in another file (data_location = EXTERNAL)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    location: str
    offset: int
    length: int | None


@define
class TensorFields:
    dims: list[int] = field(factory=list)
    dims_spans: list[tuple[int, int]] = field(factory=list)
    data_type: int = 0
    data_type_span: tuple[int, int] | None = None
    name: bytes = b""
    data: list[Field] = field(factory=list)
    other_data: bool = False
    external: bool = False
    external_entries: list[tuple[int, int]] = field(factory=list)


@define
class ModelWalk:
    initializers: list[Initializer] = field(factory=list)
    externals: list[ExternalRef] = field(factory=list)
    containers: list[Container] = field(factory=list)
    skipped: list[str] = field(factory=list)
    has_graph: bool = False
    _names: set[str] = field(factory=set)

    def unique_name(self, raw: bytes, where: int) -> str:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("an initializer's name is not UTF-8", where) from None
        base, n = name, 1
        while name in self._names:
            n += 1
            name = f"{base}#{n}"
        self._names.add(name)
        return name


def walk_model(buf: Buffer, start: int = 0, end: int | None = None) -> ModelWalk:
    """Walk a serialized ModelProto; raise `WireError` where the bytes are not well formed."""
    end = len(buf) if end is None else end
    walk = ModelWalk()
    for f in iter_fields(buf, start, end):
        if f.number == MODEL_GRAPH and f.wire_type == LEN:
            walk.has_graph = True
            _graph(buf, f, None, walk)
    return walk


def _container(f: Field, parent: Container | None) -> Container:
    return Container(varint_start=f.length_start, varint_end=f.value_start, length=f.end - f.value_start, parent=parent)


def _graph(buf: Buffer, graph_field: Field, parent: Container | None, walk: ModelWalk) -> None:
    graph = _container(graph_field, parent)
    for f in iter_fields(buf, graph_field.value_start, graph_field.end):
        if f.wire_type != LEN:
            continue
        if f.number == GRAPH_INITIALIZER:
            _tensor(buf, f, graph, walk)
        elif f.number == GRAPH_NODE:
            node = _container(f, graph)
            for a in iter_fields(buf, f.value_start, f.end):
                if a.number == NODE_ATTRIBUTE and a.wire_type == LEN:
                    attribute = _container(a, node)
                    for g in iter_fields(buf, a.value_start, a.end):
                        if g.number in (ATTRIBUTE_GRAPH, ATTRIBUTE_GRAPHS) and g.wire_type == LEN:
                            _graph(buf, g, attribute, walk)


def _register(container: Container, walk: ModelWalk) -> None:
    """Number `container` and its ancestors, outermost first, the first time they enclose data."""
    chain = []
    node: Container | None = container
    while node is not None and node.index < 0:
        chain.append(node)
        node = node.parent
    for c in reversed(chain):
        c.index = len(walk.containers)
        walk.containers.append(c)


def _read_tensor_fields(buf: Buffer, tensor_field: Field) -> TensorFields:
    t = TensorFields()
    for f in iter_fields(buf, tensor_field.value_start, tensor_field.end):
        if f.number == D.DIMS:
            t.dims_spans.append((f.start, f.end))
            if f.wire_type == VARINT:
                t.dims.append(f.value)
            elif f.wire_type == LEN:
                pos = f.value_start
                while pos < f.end:
                    value, pos = read_varint(buf, pos, f.end)
                    t.dims.append(value)
        elif f.number == D.DATA_TYPE and f.wire_type == VARINT:
            t.data_type = f.value
            t.data_type_span = (f.start, f.end)
        elif f.number == D.NAME and f.wire_type == LEN:
            t.name = bytes(buf[f.value_start : f.end])  # type: ignore[index]
        elif f.number in (D.RAW_DATA, D.FLOAT_DATA, D.INT32_DATA, D.INT64_DATA, D.DOUBLE_DATA, D.UINT64_DATA):
            t.data.append(f)
        elif f.number in (D.SEGMENT, D.STRING_DATA):
            t.other_data = True
        elif f.number == D.DATA_LOCATION and f.wire_type == VARINT:
            t.external = f.value == D.EXTERNAL
        elif f.number == D.EXTERNAL_DATA and f.wire_type == LEN:
            t.external_entries.append((f.value_start, f.end))
    return t


def _tensor(buf: Buffer, tensor_field: Field, graph: Container, walk: ModelWalk) -> None:
    t = _read_tensor_fields(buf, tensor_field)
    name = walk.unique_name(t.name, tensor_field.start)
    dtype_name = D.ONNX_TO_THETA.get(t.data_type)
    signed_dims = tuple(d - (1 << 64) if d >= 1 << 63 else d for d in t.dims)
    if dtype_name is None or t.data_type_span is None or t.other_data or any(d < 0 for d in signed_dims):
        walk.skipped.append(name)
        return
    shape = signed_dims
    if t.external:
        walk.externals.append(_external(buf, name, dtype_name, shape, t.external_entries, tensor_field.start))
        return
    if len(t.data) != 1 or t.data[0].wire_type != LEN:
        walk.skipped.append(name)
        return
    data = t.data[0]
    if data.number != D.RAW_DATA and not _typed_round_trips(buf, data, dtype_name, shape):
        walk.skipped.append(name)
        return
    if data.number == D.RAW_DATA:
        expected = _nbytes(dtype_name, shape)
        if data.end - data.value_start != expected:
            raise WireError(
                f"initializer {name!r}: raw_data holds {data.end - data.value_start} bytes, but {dtype_name}"
                f" {list(shape)} needs {expected}",
                data.start,
            )
    container = _container(tensor_field, graph)
    _register(container, walk)
    walk.initializers.append(
        Initializer(
            name=name, dtype=dtype_name, shape=shape, field_number=data.number, field_start=data.start,
            value_start=data.value_start, field_end=data.end, container=container,
            content_start=tensor_field.value_start, dims_spans=tuple(t.dims_spans), data_type_span=t.data_type_span,
        )
    )  # fmt: skip


def _nbytes(dtype_name: str, shape: tuple[int, ...]) -> int:
    n = dtype(dtype_name).itemsize
    for d in shape:
        n *= d
    return n


def _typed_round_trips(buf: Buffer, data: Field, dtype_name: str, shape: tuple[int, ...]) -> bool:
    """True when the typed field holds exactly the tensor and re-encoding gives the same bytes."""
    spec = D.TYPED_FIELDS.get(dtype_name)
    if spec is None or spec.number != data.number:
        return False
    payload = bytes(buf[data.value_start : data.end])  # type: ignore[index]
    try:
        raw = D.typed_to_raw(dtype_name, payload)
    except D.VarintError:
        return False
    return len(raw) == _nbytes(dtype_name, shape) and D.raw_to_typed(dtype_name, raw) == payload


def _external(
    buf: Buffer, name: str, dtype_name: str, shape: tuple[int, ...], entries: list[tuple[int, int]], where: int
) -> ExternalRef:
    values: dict[str, str] = {}
    for start, end in entries:
        key = value = b""
        for f in iter_fields(buf, start, end):
            if f.number == 1 and f.wire_type == LEN:
                key = bytes(buf[f.value_start : f.end])  # type: ignore[index]
            elif f.number == 2 and f.wire_type == LEN:
                value = bytes(buf[f.value_start : f.end])  # type: ignore[index]
        values[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    if "location" not in values:
        raise WireError(f"initializer {name!r} is marked EXTERNAL but names no location", where)
    try:
        offset = int(values.get("offset", "0"))
        length = int(values["length"]) if "length" in values else None
    except ValueError:
        raise WireError(f"initializer {name!r}: external offset/length are not integers: {values}", where) from None
    return ExternalRef(name=name, dtype=dtype_name, shape=shape, location=values["location"], offset=offset,
                       length=length)  # fmt: skip
