"""Protocol buffers wire format: varints, tags and the fields of one message.

Only what walking an ONNX file needs. Offsets are into any buffer that supports indexing
and slicing (bytes, mmap); nothing is copied while walking.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from attrs import frozen

VARINT = 0
FIXED64 = 1
LEN = 2
FIXED32 = 5


class Buffer(Protocol):
    def __getitem__(self, index: int, /) -> int: ...
    def __len__(self) -> int: ...


class WireError(Exception):
    """The bytes are not a well-formed protobuf message; `offset` says where."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@frozen(kw_only=True)
class Field:
    """One field occurrence: `start` is its tag, `value_start:end` its payload.

    For a varint field `value` holds the number; for a length-delimited field the payload
    is `buffer[value_start:end]` and `length_start` is where its length varint begins.
    """

    number: int
    wire_type: int
    start: int
    length_start: int
    value_start: int
    end: int
    value: int = 0


def read_varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    """Decode the varint at `pos`; return (value, position after it)."""
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise WireError("a varint runs past the end of its message", start)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("a varint is longer than 10 bytes", start)


def encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_tag(number: int, wire_type: int) -> bytes:
    return encode_varint((number << 3) | wire_type)


def iter_fields(buf: Buffer, start: int, end: int) -> Iterator[Field]:
    """Every field of the message held in `buf[start:end]`, in order."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = read_varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0 is not allowed", field_start)
        if wire_type == VARINT:
            value, pos = read_varint(buf, pos, end)
            yield Field(number=number, wire_type=wire_type, start=field_start, length_start=pos, value_start=pos,
                        end=pos, value=value)  # fmt: skip
            continue
        if wire_type == LEN:
            length_start = pos
            length, pos = read_varint(buf, pos, end)
            value_start = pos
            pos += length
        elif wire_type == FIXED64:
            length_start = value_start = pos
            pos += 8
        elif wire_type == FIXED32:
            length_start = value_start = pos
            pos += 4
        else:
            raise WireError(f"wire type {wire_type} (groups or invalid) does not occur in ONNX", field_start)
        if pos > end:
            raise WireError(f"field {number} needs {pos - value_start} bytes but its message ends first", field_start)
        yield Field(number=number, wire_type=wire_type, start=field_start, length_start=length_start,
                    value_start=value_start, end=pos)  # fmt: skip
