"""Where the members of a ZIP archive are, and where their CRC-32 fields are written.

An `.npz` file is a ZIP archive of `.npy` files. Python's `zipfile` lists the members but not
where each member's CRC-32 is stored (in its local header, its central-directory entry and,
for some writers, a data descriptor), which a rewrite with changed tensor bytes must patch.
Every offset and size the archive claims is checked against the bytes present.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

LOCAL = b"PK\x03\x04"
CENTRAL = b"PK\x01\x02"
END = b"PK\x05\x06"
END64 = b"PK\x06\x06"
END64_LOCATOR = b"PK\x06\x07"
DESCRIPTOR = b"PK\x07\x08"
STORED = 0
HAS_DESCRIPTOR = 0x08
ZIP64_EXTRA = 0x0001
SATURATED = 0xFFFFFFFF


class ZipError(Exception):
    """The archive is damaged; the message says how."""


@dataclass(frozen=True)
class Member:
    name: str
    method: int
    start: int  # first byte of the member's stored content
    size: int  # stored bytes (the content, for a stored member)
    crc_fields: tuple[int, ...]  # offsets of the CRC-32 fields that describe this member


def _u16(buf: bytes | memoryview, at: int) -> int:
    return int.from_bytes(buf[at : at + 2], "little")


def _u32(buf: bytes | memoryview, at: int) -> int:
    return int.from_bytes(buf[at : at + 4], "little")


def _u64(buf: bytes | memoryview, at: int) -> int:
    return int.from_bytes(buf[at : at + 8], "little")


def _need(buf: bytes | memoryview, at: int, n: int, what: str) -> None:
    if at < 0 or at + n > len(buf):
        raise ZipError(f"{what} at byte {at} runs past the end of the file (it is truncated or damaged)")


def _directory(buf: bytes | memoryview) -> tuple[int, int, int]:
    """(offset, size, entries) of the central directory."""
    tail_start = max(0, len(buf) - 22 - 0xFFFF)
    end = bytes(buf[tail_start:]).rfind(END)
    if end < 0:
        raise ZipError("no end-of-central-directory record: the file is truncated or not a ZIP archive")
    end += tail_start
    _need(buf, end, 22, "the end-of-central-directory record")
    count, size, offset = _u16(buf, end + 10), _u32(buf, end + 12), _u32(buf, end + 16)
    locator = end - 20
    if locator >= 0 and bytes(buf[locator : locator + 4]) == END64_LOCATOR:
        end64 = _u64(buf, locator + 8)
        _need(buf, end64, 56, "the ZIP64 end-of-central-directory record")
        if bytes(buf[end64 : end64 + 4]) != END64:
            raise ZipError("the ZIP64 end-of-central-directory record is missing")
        count, size, offset = _u64(buf, end64 + 32), _u64(buf, end64 + 40), _u64(buf, end64 + 48)
    _need(buf, offset, size, "the central directory")
    if count > size // 46:
        raise ZipError(f"the central directory claims {count} entries in {size} bytes")
    return offset, size, count


def _zip64(extra: bytes, wanted: list[str]) -> dict[str, int]:
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, at)
        if tag == ZIP64_EXTRA:
            body = extra[at + 4 : at + 4 + length]
            if len(body) < 8 * len(wanted):
                raise ZipError("a ZIP64 extra field is too short")
            return {key: int.from_bytes(body[8 * i : 8 * i + 8], "little") for i, key in enumerate(wanted)}
        at += 4 + length
    raise ZipError("a member needs a ZIP64 extra field and has none")


def members(buf: bytes | memoryview) -> list[Member]:
    """The archive's members, in central-directory order."""
    offset, _, count = _directory(buf)
    found = []
    at = offset
    for _ in range(count):
        _need(buf, at, 46, "a central-directory entry")
        if bytes(buf[at : at + 4]) != CENTRAL:
            raise ZipError(f"the central-directory entry at byte {at} is damaged")
        flags, method = _u16(buf, at + 8), _u16(buf, at + 10)
        values = {"csize": _u32(buf, at + 20), "usize": _u32(buf, at + 24), "header": _u32(buf, at + 42)}
        name_len, extra_len, comment_len = _u16(buf, at + 28), _u16(buf, at + 30), _u16(buf, at + 32)
        _need(buf, at + 46, name_len + extra_len + comment_len, "a central-directory entry's name")
        name = bytes(buf[at + 46 : at + 46 + name_len]).decode("utf-8", errors="replace")
        saturated = [k for k in ("usize", "csize", "header") if values[k] == SATURATED]
        if saturated:
            values.update(_zip64(bytes(buf[at + 46 + name_len : at + 46 + name_len + extra_len]), saturated))
        found.append(_member(buf, name, flags, method, values, central_crc=at + 16))
        at += 46 + name_len + extra_len + comment_len
    return found


def _member(buf: bytes | memoryview, name: str, flags: int, method: int, values: dict[str, int], central_crc: int):  # type: ignore[no-untyped-def]
    header = values["header"]
    _need(buf, header, 30, f"the local header of {name!r}")
    if bytes(buf[header : header + 4]) != LOCAL:
        raise ZipError(f"the local header of {name!r} is missing")
    start = header + 30 + _u16(buf, header + 26) + _u16(buf, header + 28)
    size = values["csize"]
    _need(buf, start, size, f"member {name!r}")
    if method == STORED and values["usize"] != size:
        raise ZipError(f"member {name!r} is stored, yet claims {values['usize']} bytes in {size}")
    fields = [header + 14, central_crc]
    if flags & HAS_DESCRIPTOR:
        descriptor = start + size
        signed = bytes(buf[descriptor : descriptor + 4]) == DESCRIPTOR
        fields.append(descriptor + 4 if signed else descriptor)
        _need(buf, fields[-1], 4, f"the data descriptor of {name!r}")
    return Member(name=name, method=method, start=start, size=size, crc_fields=tuple(fields))
