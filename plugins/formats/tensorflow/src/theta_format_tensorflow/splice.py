"""A file cut into parameter regions and the bytes around them (the skeleton), and put back.

Every format of this plugin ends the same way: it finds where each tensor's bytes lie in the
file (HDF5 dataset offsets, a TensorFlow index), and the skeleton is the file with those
regions cut out, preceded by a JSON header that lists the regions. Writing interleaves the
kept bytes with the tensors again, so an unchanged checkpoint comes back byte for byte.

Skeleton: `MAGIC`, u64 little-endian header length, JSON header, then the kept bytes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import numpy as np
from attrs import frozen

from theta.errors import FormatError
from theta.formats import Layout, TensorInfo
from theta.tensors import Tensor, dtype

MAGIC = b"theta-tf-skeleton\x00\x01"
COPY_BLOCK = 1 << 22


@frozen(kw_only=True)
class Region:
    """One tensor's bytes in the file: `order` is "<" or ">" (the file's byte order)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    size: int
    order: str = "<"

    @property
    def info(self) -> TensorInfo:
        return TensorInfo(dtype=self.dtype, shape=self.shape)

    def to_json(self) -> list[Any]:
        return [self.name, self.dtype, list(self.shape), self.offset, self.size, self.order]

    @classmethod
    def from_json(cls, raw: list[Any]) -> Region:
        name, dtype_name, shape, offset, size, order = raw
        return cls(name=name, dtype=dtype_name, shape=tuple(shape), offset=offset, size=size, order=order)


def nbytes(dtype_name: str, shape: tuple[int, ...]) -> int:
    size = dtype(dtype_name).itemsize
    for d in shape:
        size *= d
    return size


@frozen(kw_only=True)
class Skeleton:
    kind: str
    size: int
    regions: tuple[Region, ...]
    kept: bytes
    extra: dict[str, Any]

    def encode(self) -> bytes:
        header = {
            "kind": self.kind,
            "size": self.size,
            "regions": [r.to_json() for r in self.regions],
            "extra": self.extra,
        }
        raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
        return MAGIC + struct.pack("<Q", len(raw)) + raw + self.kept

    @classmethod
    def decode(cls, data: bytes, kind: str) -> Skeleton:
        if not data.startswith(MAGIC):
            raise FormatError(f"{kind}: the stored skeleton is not one this plugin wrote (bad magic)")
        start = len(MAGIC) + 8
        (length,) = struct.unpack("<Q", data[len(MAGIC) : start])
        header = json.loads(data[start : start + length])
        if header["kind"] != kind:
            raise FormatError(f"{kind}: the stored skeleton belongs to format {header['kind']!r}")
        regions = tuple(Region.from_json(r) for r in header["regions"])
        return cls(kind=kind, size=header["size"], regions=regions, kept=data[start + length :], extra=header["extra"])

    def matches(self, layout: Layout) -> bool:
        """True when the layout has exactly the skeleton's parameters, dtypes and shapes."""
        return {r.name: r.info for r in self.regions} == dict(layout.parameters)


def check_regions(regions: list[Region], file_size: int, path: str) -> list[Region]:
    """Sort by offset and reject regions that overlap or run past the end of the file."""
    regions = sorted(regions, key=lambda r: (r.offset, r.name))
    position = 0
    names: set[str] = set()
    for r in regions:
        if r.name in names:
            raise FormatError(f"{path}: parameter {r.name!r} appears twice")
        names.add(r.name)
        if r.size != nbytes(r.dtype, r.shape):
            raise FormatError(
                f"{path}: parameter {r.name!r}: {r.size} bytes stored for {r.dtype} {list(r.shape)};"
                " the file is damaged"
            )
        if r.offset < position:
            raise FormatError(f"{path}: parameter {r.name!r} overlaps the one before it; the file is damaged")
        if r.offset + r.size > file_size:
            raise FormatError(
                f"{path}: file is truncated: parameter {r.name!r} needs bytes up to offset"
                f" {r.offset + r.size}, the file has {file_size}"
            )
        position = r.offset + r.size
    return regions


def cut(file: BinaryIO, file_size: int, regions: list[Region], kind: str, extra: dict[str, Any]) -> Skeleton:
    """The skeleton of `file`: every byte outside `regions` (already checked and sorted)."""
    kept = bytearray()
    position = 0
    for r in [*regions, Region(name="", dtype="uint8", shape=(0,), offset=file_size, size=0)]:
        file.seek(position)
        kept += file.read(r.offset - position)
        position = r.offset + r.size
    return Skeleton(kind=kind, size=file_size, regions=tuple(regions), kept=bytes(kept), extra=extra)


def to_little(data: bytes | bytearray | memoryview, region: Region) -> bytes | bytearray | memoryview:
    if region.order == "<" or dtype(region.dtype).itemsize == 1:
        return data
    width = dtype(region.dtype).itemsize
    unit = {"complex64": 4, "complex128": 8}.get(region.dtype, width)
    return np.frombuffer(data, dtype=f">u{unit}").astype(f"<u{unit}").tobytes()


def tensors(file: BinaryIO, regions: tuple[Region, ...] | list[Region], path: str) -> Iterator[tuple[str, Tensor]]:
    """Each region's tensor, in file order, read from `file` (seekable), which is closed at the end."""
    try:
        for r in regions:
            file.seek(r.offset)
            data = file.read(r.size)
            if len(data) != r.size:
                raise FormatError(f"{path}: file is truncated inside parameter {r.name!r}")
            yield r.name, Tensor(dtype=r.dtype, shape=r.shape, data=to_little(data, r))
    finally:
        file.close()


def splice(skeleton: Skeleton, load: Callable[[str], Tensor], sink: BinaryIO) -> None:
    """Write the file back: kept bytes and tensors (in the file's byte order) interleaved."""
    kept = memoryview(skeleton.kept)
    position = 0
    kept_at = 0
    for r in skeleton.regions:
        gap = r.offset - position
        sink.write(kept[kept_at : kept_at + gap])
        kept_at += gap
        tensor = load(r.name)
        if tensor.dtype != r.dtype or tensor.shape != r.shape:
            raise FormatError(
                f"{skeleton.kind}: parameter {r.name!r} is {tensor.dtype} {list(tensor.shape)},"
                f" the file needs {r.dtype} {list(r.shape)}"
            )
        sink.write(to_little(tensor.data, r))
        position = r.offset + r.size
    sink.write(kept[kept_at:])


def copy_stream(source: BinaryIO, sink: BinaryIO) -> None:
    while block := source.read(COPY_BLOCK):
        sink.write(block)
