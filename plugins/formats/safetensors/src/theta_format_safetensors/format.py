"""safetensors: `<u64 little-endian N><N bytes of JSON header><tensor bytes>`."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

from attrs import frozen

from theta.errors import FormatError
from theta.formats import Checkpoint, CheckpointFormat, Layout, Source, TensorInfo
from theta.tensors import Tensor, dtype

MAX_HEADER = 100 * 1024 * 1024
METADATA_KEY = "__metadata__"
# What a header claims is read in pieces that grow as bytes arrive, from this size on: a file
# that claims more than it holds fails after allocating about what it holds, not what it claims.
CLAIM_STEP = 1 << 24

TO_THETA = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16",
    "U32": "uint32", "I32": "int32", "U64": "uint64", "I64": "int64", "F16": "float16",
    "BF16": "bfloat16", "F32": "float32", "F64": "float64", "C64": "complex64",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}  # fmt: skip
FROM_THETA = {v: k for k, v in TO_THETA.items()}


@frozen(kw_only=True)
class Entry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def read_claimed(source: Source, n: int, what: str) -> bytearray:
    """Exactly `n` bytes, with memory growing only as they arrive; a short file is a `FormatError`."""
    if n <= CLAIM_STEP:
        return source.read_exact(n, what)
    out = bytearray(CLAIM_STEP)
    filled = 0
    while True:
        with memoryview(out) as view:
            got = source.readinto(view[filled:])
        filled += got
        if filled == n:
            return out
        if filled < len(out):
            raise FormatError(
                f"{source.path}: file is truncated: {what} needs {n} bytes at offset"
                f" {source.offset - filled}, only {filled} remain"
            )
        out.extend(bytes(min(len(out), n - len(out))))


def _parse_header(raw: bytes, path: str) -> tuple[dict[str, Any] | None, list[Entry]]:
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: safetensors header is not valid JSON: {exc}") from None
    except RecursionError:
        raise FormatError(f"{path}: safetensors header is nested too deeply to be a header") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: safetensors header is not a JSON object")
    meta = header.pop(METADATA_KEY, None)
    entries = [_entry(name, info, path) for name, info in header.items()]
    entries.sort(key=lambda e: (e.begin, e.end))
    position = 0
    for e in entries:
        if e.begin != position:
            raise FormatError(
                f"{path}: safetensors header lies about sizes: tensor {e.name!r} starts at byte"
                f" {e.begin} of the data, expected {position} (overlap or gap)"
            )
        position = e.end
    return meta, entries


def _entry(name: str, info: Any, path: str) -> Entry:
    where = f"{path}: tensor {name!r}"
    try:
        theta_dtype = TO_THETA[info["dtype"]]
        shape = tuple(_integer(d) for d in info["shape"])
        begin, end = (_integer(o) for o in info["data_offsets"])
    except (KeyError, TypeError, ValueError):
        raise FormatError(
            f"{where}: header entry needs a known dtype, a shape and two data_offsets: {info!r}"
        ) from None
    numel = 1
    for d in shape:
        if d < 0:
            raise FormatError(f"{where}: negative dimension in shape {list(shape)}")
        numel *= d
    if end - begin != numel * dtype(theta_dtype).itemsize or begin < 0:
        raise FormatError(
            f"{where}: header lies about sizes: data_offsets [{begin}, {end}] do not hold"
            f" {info['dtype']} {list(shape)} ({numel * dtype(theta_dtype).itemsize} bytes)"
        )
    return Entry(name=name, dtype=theta_dtype, shape=shape, begin=begin, end=end)


def _integer(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(value)
    return value


def build_header(meta: dict[str, Any] | None, parameters: dict[str, TensorInfo]) -> bytes:
    """A header for `parameters` in the given order, padded with spaces to 8 bytes."""
    header: dict[str, Any] = {}
    if meta is not None:
        header[METADATA_KEY] = meta
    offset = 0
    for name, info in parameters.items():
        size = dtype(info.dtype).itemsize
        for d in info.shape:
            size *= d
        header[name] = {
            "dtype": FROM_THETA[info.dtype],
            "shape": list(info.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


@frozen
class SafetensorsFormat(CheckpointFormat):
    name = "safetensors"
    extensions = (".safetensors",)

    def sniff(self, head: bytes) -> bool:
        if len(head) < 9:
            return False
        (size,) = struct.unpack("<Q", head[:8])
        return 2 <= size <= MAX_HEADER and head[8:9] == b"{"

    def read(self, source: Source) -> Checkpoint:
        if not self.sniff(source.head):
            raise FormatError(
                f"{source.path}: not a safetensors file (it must start with an 8-byte header"
                " length and a JSON header); if it is another format, set theta-format in .gitattributes"
            )
        prefix = source.read_exact(8, "the header length")
        (size,) = struct.unpack("<Q", prefix)
        raw = read_claimed(source, size, "the header")
        _, entries = _parse_header(bytes(raw), source.path)
        return Checkpoint(skeleton=bytes(prefix + raw), parameters=self._tensors(source, entries))

    def _tensors(self, source: Source, entries: list[Entry]) -> Iterator[tuple[str, Tensor]]:
        for e in entries:
            data = read_claimed(source, e.end - e.begin, f"tensor {e.name!r}")
            yield e.name, Tensor(dtype=e.dtype, shape=e.shape, data=data)
        if source.read(1):
            raise FormatError(f"{source.path}: header lies about sizes: data continues after the last tensor")

    def write(self, layout: Layout, sink: BinaryIO) -> None:
        skeleton = layout.skeleton
        meta, entries = _parse_header(skeleton[8:], "skeleton")
        stored = {e.name: TensorInfo(dtype=e.dtype, shape=e.shape) for e in entries}
        if stored == dict(layout.parameters):
            order = [e.name for e in entries]
        else:
            skeleton = build_header(meta, dict(layout.parameters))
            order = list(layout.parameters)
        sink.write(skeleton)
        for name in order:
            sink.write(layout.load(name).data)
