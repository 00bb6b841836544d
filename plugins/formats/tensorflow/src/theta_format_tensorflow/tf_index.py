"""TensorFlow's tensor-bundle index (`ckpt-1.index`), read without TensorFlow.

The index is a LevelDB-style sorted table: data blocks of prefix-compressed key/value
entries, an index block pointing at them, and a 48-byte footer ending in a magic number.
Each block carries a 5-byte trailer (compression type, masked CRC-32C). The value under the
empty key is a `BundleHeaderProto`; every other key names a tensor and holds a
`BundleEntryProto` (dtype, shape, shard, offset, size, masked CRC-32C of the bytes).
Checkpoints are written without block compression; a compressed block is an error.
"""

from __future__ import annotations

import struct

import google_crc32c
from attrs import frozen

from theta.errors import FormatError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
TRAILER_SIZE = 5
MASK_DELTA = 0xA282EAD8

# tensorflow/core/framework/types.proto: DataType -> theta dtype name.
DATA_TYPES = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 8: "complex64",
    9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 18: "complex128", 19: "float16",
    22: "uint32", 23: "uint64", 24: "float8_e5m2", 25: "float8_e4m3fn",
}  # fmt: skip
DT_STRING = 7


def mask(crc: int) -> int:
    """LevelDB's CRC masking, used for every CRC that TensorFlow stores."""
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    return mask(google_crc32c.value(bytes(data)))


def string_tensor_crc(raw: bytes, numel: int) -> int | None:
    """The masked CRC TensorFlow records for a string tensor stored as `raw`, or None if malformed.

    The shard holds the element lengths as varints, a masked CRC of them, then the bytes; the
    recorded CRC covers each length as a little-endian uint32, the length CRC and the bytes.
    """
    reader = _Reader(raw, 0, len(raw), "")
    crc = 0
    try:
        for _ in range(numel):
            crc = google_crc32c.extend(crc, struct.pack("<I", reader.varint() & 0xFFFFFFFF))
        length_crc = reader.take(4)
    except FormatError:
        return None
    crc = google_crc32c.extend(crc, length_crc)
    return mask(google_crc32c.extend(crc, raw[reader.position :]))


@frozen(kw_only=True)
class Entry:
    """One tensor of the bundle; `crc_at` is the file offset of its CRC field (or -1)."""

    key: bytes
    dtype_code: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int
    sliced: bool
    crc_at: int

    @property
    def dtype(self) -> str | None:
        return DATA_TYPES.get(self.dtype_code)


@frozen(kw_only=True)
class Header:
    num_shards: int
    big_endian: bool


@frozen(kw_only=True)
class Index:
    header: Header
    entries: tuple[Entry, ...]
    blocks: tuple[tuple[int, int], ...]  # (offset, size) of each data block


class _Reader:
    def __init__(self, data: bytes, position: int, end: int, path: str) -> None:
        self.data = data
        self.position = position
        self.end = end
        self.path = path

    def varint(self) -> int:
        result = shift = 0
        while True:
            if self.position >= self.end or shift > 63:
                raise FormatError(f"{self.path}: damaged checkpoint index (bad varint at {self.position})")
            byte = self.data[self.position]
            self.position += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def take(self, n: int) -> bytes:
        if self.position + n > self.end:
            raise FormatError(f"{self.path}: damaged checkpoint index (field runs past its block)")
        out = self.data[self.position : self.position + n]
        self.position += n
        return out


def _fields(data: bytes, start: int, end: int, path: str) -> list[tuple[int, int, int | bytes, int]]:
    """Protobuf fields in data[start:end]: (number, wire type, value, offset of the value)."""
    reader = _Reader(data, start, end, path)
    out: list[tuple[int, int, int | bytes, int]] = []
    while reader.position < end:
        tag = reader.varint()
        number, wire = tag >> 3, tag & 7
        at = reader.position
        if wire == 0:
            out.append((number, wire, reader.varint(), at))
        elif wire == 1:
            out.append((number, wire, struct.unpack("<Q", reader.take(8))[0], at))
        elif wire == 2:
            length = reader.varint()
            at = reader.position
            out.append((number, wire, reader.take(length), at))
        elif wire == 5:
            out.append((number, wire, struct.unpack("<I", reader.take(4))[0], at))
        else:
            raise FormatError(f"{path}: damaged checkpoint index (protobuf wire type {wire})")
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _shape(raw: bytes, path: str) -> tuple[int, ...]:
    dims: list[int] = []
    for number, _, value, _ in _fields(raw, 0, len(raw), path):
        if number == 2 and isinstance(value, bytes):
            size = 0
            for inner, _, v, _ in _fields(value, 0, len(value), path):
                if inner == 1 and isinstance(v, int):
                    size = _signed(v)
            dims.append(size)
        elif number == 3 and value:
            raise FormatError(f"{path}: a tensor of unknown rank in the checkpoint index")
    return tuple(dims)


def _entry(key: bytes, data: bytes, start: int, end: int, path: str) -> Entry:
    values: dict[int, int | bytes] = {}
    crc_at = -1
    sliced = False
    for number, _, value, at in _fields(data, start, end, path):
        if number == 7:
            sliced = True
        values[number] = value
        if number == 6:
            crc_at = at
    shape_raw = values.get(2, b"")
    return Entry(
        key=key,
        dtype_code=int(values.get(1, 0)),  # type: ignore[arg-type]
        shape=_shape(shape_raw if isinstance(shape_raw, bytes) else b"", path),
        shard=int(values.get(3, 0)),  # type: ignore[arg-type]
        offset=_signed(int(values.get(4, 0))),  # type: ignore[arg-type]
        size=_signed(int(values.get(5, 0))),  # type: ignore[arg-type]
        crc32c=int(values.get(6, 0)),  # type: ignore[arg-type]
        sliced=sliced,
        crc_at=crc_at,
    )


def _block(data: bytes, offset: int, size: int, path: str) -> list[tuple[bytes, int, int]]:
    """Entries of the block at `offset`: (key, value start, value end)."""
    if offset < 0 or offset + size + TRAILER_SIZE > len(data) or size < 4:
        raise FormatError(f"{path}: damaged checkpoint index (block at {offset} runs past the end)")
    if data[offset + size] != 0:
        raise FormatError(f"{path}: checkpoint index block at {offset} is compressed; not supported")
    (stored,) = struct.unpack("<I", data[offset + size + 1 : offset + size + 5])
    if stored != masked_crc32c(data[offset : offset + size + 1]):
        raise FormatError(f"{path}: checkpoint index block at {offset} fails its CRC check; the file is damaged")
    (restarts,) = struct.unpack("<I", data[offset + size - 4 : offset + size])
    end = offset + size - 4 - 4 * restarts
    reader = _Reader(data, offset, end, path)
    key = b""
    out: list[tuple[bytes, int, int]] = []
    while reader.position < end:
        shared, unshared, length = reader.varint(), reader.varint(), reader.varint()
        key = key[:shared] + reader.take(unshared)
        out.append((key, reader.position, reader.position + length))
        reader.take(length)
    return out


def parse_index(data: bytes, path: str) -> Index:
    if len(data) < FOOTER_SIZE or struct.unpack("<Q", data[-8:])[0] != TABLE_MAGIC:
        raise FormatError(f"{path}: not a TensorFlow checkpoint index (no table magic at its end); it may be truncated")
    footer = _Reader(data, len(data) - FOOTER_SIZE, len(data) - 8, path)
    footer.varint(), footer.varint()  # metaindex block handle: unused
    index_offset, index_size = footer.varint(), footer.varint()
    blocks: list[tuple[int, int]] = []
    for _, start, end in _block(data, index_offset, index_size, path):
        handle = _Reader(data, start, end, path)
        blocks.append((handle.varint(), handle.varint()))
    header = Header(num_shards=1, big_endian=False)
    entries: list[Entry] = []
    for offset, size in blocks:
        for key, start, end in _block(data, offset, size, path):
            if key == b"":
                fields = {n: v for n, _, v, _ in _fields(data, start, end, path)}
                header = Header(num_shards=int(fields.get(1, 1)), big_endian=fields.get(2, 0) == 1)  # type: ignore[arg-type]
            else:
                entries.append(_entry(key, data, start, end, path))
    return Index(header=header, entries=tuple(entries), blocks=tuple(blocks))


def refresh_crcs(data: bytes, crcs: dict[bytes, int], path: str) -> bytes:
    """The index with the tensor CRCs in `crcs` (masked, by key) replaced and block CRCs redone.

    The CRC field is a fixed32, so every value keeps its length and the table its layout.
    """
    index = parse_index(data, path)
    out = bytearray(data)
    for entry in index.entries:
        if entry.key in crcs:
            if entry.crc_at < 0:
                raise FormatError(f"{path}: tensor {entry.key!r} has no CRC field to update")
            out[entry.crc_at : entry.crc_at + 4] = struct.pack("<I", crcs[entry.key])
    for offset, size in index.blocks:
        out[offset + size + 1 : offset + size + 5] = struct.pack("<I", masked_crc32c(out[offset : offset + size + 1]))
    return bytes(out)


def _ordered_num(key: bytes, at: int) -> tuple[int, int]:
    """An unsigned OrderedCode number: a length byte, then that many big-endian bytes."""
    length = key[at]
    if length > 8 or at + 1 + length > len(key):
        raise ValueError("bad number")
    return int.from_bytes(key[at + 1 : at + 1 + length], "big"), at + 1 + length


def _ordered_signed(key: bytes, at: int) -> tuple[int, int]:
    """A signed OrderedCode number: leading bits of the first byte give its length (up to 7 bytes)."""
    negative = not key[at] & 0x80
    first = key[at] ^ 0xFF if negative else key[at]
    length = 0
    while length < 8 and first & (0x80 >> length):
        length += 1
    if not 1 <= length <= 7 or at + length > len(key):
        raise ValueError("bad signed number")
    raw = bytes(b ^ 0xFF for b in key[at : at + length]) if negative else key[at : at + length]
    value = int.from_bytes(raw, "big") & ((1 << (7 * length - 1)) - 1)
    return (-value - 1 if negative else value), at + length


def slice_key_name(key: bytes) -> str | None:
    """`name[start:stop,:]` for the key of one slice of a partitioned tensor, None if not one.

    The key is OrderedCode: the number 0, the escaped tensor name, the rank, then each
    dimension's start and length (length -1: the whole dimension).
    """
    try:
        if key[:1] != b"\x00":
            return None
        at = 1
        name = bytearray()
        while True:
            byte = key[at]
            if byte == 0x00:
                if key[at + 1] == 0x01:
                    at += 2
                    break
                name.append(0x00)  # escaped 0x00 0xff
            elif byte == 0xFF:
                name.append(0xFF)  # escaped 0xff 0x00
            else:
                name.append(byte)
                at += 1
                continue
            at += 2
        rank, at = _ordered_num(key, at)
        extents: list[str] = []
        for _ in range(rank):
            start, at = _ordered_signed(key, at)
            length, at = _ordered_signed(key, at)
            extents.append(":" if length == -1 else f"{start}:{start + length}")
        if at != len(key):
            return None
        return f"{name.decode('utf-8')}[{','.join(extents)}]"
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
