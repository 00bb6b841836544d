"""Just enough of the ZIP format to find each member's stored bytes and its CRC-32 fields.

`torch.save` writes an uncompressed ZIP archive whose members are aligned to 64 bytes (with
padding in a local extra field) and followed by data descriptors. Python's `zipfile` does
not say where a member's CRC-32 is stored, which is what a rewrite with changed tensor bytes
must patch, so the archive is indexed here.
"""

from __future__ import annotations

import struct

from attrs import frozen

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
END_SIG = b"PK\x05\x06"
END64_SIG = b"PK\x06\x06"
END64_LOCATOR_SIG = b"PK\x06\x07"
DESCRIPTOR_SIG = b"PK\x07\x08"
HAS_DESCRIPTOR = 0x08
STORED = 0
MAX_COMMENT = 0xFFFF
ZIP64_EXTRA = 0x0001


class ZipError(Exception):
    """The bytes are not a well-formed ZIP archive; the message says what is wrong."""


@frozen(kw_only=True)
class Member:
    """One archive member: where its bytes are and where its CRC-32 is written."""

    name: str
    header_offset: int
    data_offset: int
    stored_size: int
    size: int
    method: int
    crc: int
    crc_offsets: tuple[int, ...]

    @property
    def data_end(self) -> int:
        return self.data_offset + self.stored_size


def _u16(buf: memoryview, at: int) -> int:
    return int.from_bytes(buf[at : at + 2], "little")


def _u32(buf: memoryview, at: int) -> int:
    return int.from_bytes(buf[at : at + 4], "little")


def _u64(buf: memoryview, at: int) -> int:
    return int.from_bytes(buf[at : at + 8], "little")


def _find_end(buf: memoryview) -> int:
    start = max(0, len(buf) - 22 - MAX_COMMENT)
    position = bytes(buf[start:]).rfind(END_SIG)
    if position < 0:
        raise ZipError("no end-of-central-directory record (the file is truncated or not a ZIP archive)")
    return start + position


def _central_directory(buf: memoryview) -> tuple[int, int, int]:
    """(offset, size, entry count) of the central directory, reading ZIP64 records when present."""
    end = _find_end(buf)
    if end + 22 > len(buf):
        raise ZipError("end-of-central-directory record is cut short")
    count, size, offset = _u16(buf, end + 10), _u32(buf, end + 12), _u32(buf, end + 16)
    locator = end - 20
    if locator >= 0 and bytes(buf[locator : locator + 4]) == END64_LOCATOR_SIG:
        end64 = _u64(buf, locator + 8)
        if end64 + 56 > len(buf) or bytes(buf[end64 : end64 + 4]) != END64_SIG:
            raise ZipError("ZIP64 end-of-central-directory record is missing")
        count, size, offset = _u64(buf, end64 + 32), _u64(buf, end64 + 40), _u64(buf, end64 + 48)
    if offset + size > len(buf):
        raise ZipError("central directory points past the end of the file (the file is truncated)")
    return offset, size, count


def _zip64_values(extra: bytes, wanted: list[str]) -> dict[str, int]:
    """Values of the ZIP64 extra field, for the fields whose 32-bit value was saturated."""
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, at)
        body = extra[at + 4 : at + 4 + length]
        if tag == ZIP64_EXTRA:
            if len(body) < 8 * len(wanted):
                raise ZipError("ZIP64 extra field is too short")
            return {key: int.from_bytes(body[8 * i : 8 * i + 8], "little") for i, key in enumerate(wanted)}
        at += 4 + length
    raise ZipError("a member needs a ZIP64 extra field but has none")


def read_members(buf: memoryview) -> list[Member]:
    """Every member of the archive in `buf`, in central-directory order."""
    offset, size, count = _central_directory(buf)
    members: list[Member] = []
    at = offset
    for _ in range(count):
        if at + 46 > offset + size or bytes(buf[at : at + 4]) != CENTRAL_SIG:
            raise ZipError(f"central directory entry at offset {at} is damaged")
        flags, method, crc = _u16(buf, at + 8), _u16(buf, at + 10), _u32(buf, at + 16)
        values = {"usize": _u32(buf, at + 24), "csize": _u32(buf, at + 20), "offset": _u32(buf, at + 42)}
        name_len, extra_len, comment_len = _u16(buf, at + 28), _u16(buf, at + 30), _u16(buf, at + 32)
        name = bytes(buf[at + 46 : at + 46 + name_len]).decode("utf-8", errors="replace")
        saturated = [k for k in ("usize", "csize", "offset") if values[k] == 0xFFFFFFFF]
        if saturated:
            extra = bytes(buf[at + 46 + name_len : at + 46 + name_len + extra_len])
            values.update(_zip64_values(extra, saturated))
        members.append(_member(buf, name, flags, method, crc, values, central_crc=at + 16))
        at += 46 + name_len + extra_len + comment_len
    return members


def _member(
    buf: memoryview, name: str, flags: int, method: int, crc: int, values: dict[str, int], central_crc: int
) -> Member:
    header = values["offset"]
    if header + 30 > len(buf) or bytes(buf[header : header + 4]) != LOCAL_SIG:
        raise ZipError(f"member {name!r}: local header at offset {header} is missing")
    data_offset = header + 30 + _u16(buf, header + 26) + _u16(buf, header + 28)
    stored = values["csize"]
    if data_offset + stored > len(buf):
        raise ZipError(f"member {name!r} runs past the end of the file (the file is truncated)")
    if flags & HAS_DESCRIPTOR:
        descriptor = data_offset + stored
        signed = bytes(buf[descriptor : descriptor + 4]) == DESCRIPTOR_SIG
        crc_at = descriptor + 4 if signed else descriptor
        if crc_at + 4 > len(buf) or _u32(buf, crc_at) != crc:
            raise ZipError(f"member {name!r}: data descriptor does not match the central directory")
        crc_offsets = (crc_at, central_crc)
    else:
        crc_offsets = (header + 14, central_crc)
    return Member(
        name=name,
        header_offset=header,
        data_offset=data_offset,
        stored_size=stored,
        size=stored if method == STORED else values["usize"],
        method=method,
        crc=crc,
        crc_offsets=crc_offsets,
    )
