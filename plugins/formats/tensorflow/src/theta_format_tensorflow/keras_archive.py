"""`keras`: whole-model `.keras` archives (`model.save("x.keras")`).

A `.keras` file is a zip archive holding `metadata.json`, `config.json` and the weights as
`model.weights.h5`, stored without compression. The weights member's datasets lie at fixed
offsets in the archive, so the archive is cut and spliced like a bare HDF5 file; the only
other bytes that depend on the weights are the member's CRC-32 (local header or data
descriptor, and central directory), which `write` recomputes.
"""

from __future__ import annotations

import hashlib
import io
import struct
import tempfile
import zipfile
import zlib
from typing import Any, BinaryIO

import attrs
from attrs import frozen

from theta.errors import FormatError
from theta.formats import Checkpoint, CheckpointFormat, Layout, Source
from theta.splice import Region, Skeleton, check_regions, cut, reading_extra
from theta.tensors import Tensor
from theta_format_tensorflow import byteorder, hdf5

KIND = "keras"
WEIGHTS = "model.weights.h5"
KERAS_MEMBERS = ("metadata.json", "config.json", WEIGHTS)
LOCAL_SIGNATURE = b"PK\x03\x04"
CENTRAL_SIGNATURE = b"PK\x01\x02"
DESCRIPTOR_SIGNATURE = b"PK\x07\x08"


class Window(io.RawIOBase):
    """A read-only view of `size` bytes of `file` starting at `base` (for h5py)."""

    def __init__(self, file: BinaryIO, base: int, size: int) -> None:
        self._file = file
        self._base = base
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        anchor = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, anchor + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = max(0, min(len(view), self._size - self._position))
        self._file.seek(self._base + self._position)
        got = self._file.readinto(view[:want])  # type: ignore[attr-defined]
        self._position += got
        return got


def _first_member_name(head: bytes) -> str | None:
    if len(head) < 30 or not head.startswith(LOCAL_SIGNATURE):
        return None
    (length,) = struct.unpack("<H", head[26:28])
    return head[30 : 30 + length].decode("utf-8", errors="replace")


def _locate_weights(file: BinaryIO, path: str) -> dict[str, Any]:
    """Where the weights member's bytes and CRC-32 fields lie in the archive."""
    try:
        archive = zipfile.ZipFile(file)
        names = archive.namelist()
        info = archive.getinfo(WEIGHTS) if WEIGHTS in names else None
        start_dir = archive.start_dir  # type: ignore[attr-defined]
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:  # the last: a zip version too new
        raise FormatError(f"{path}: not a readable zip archive ({exc}); the file may be truncated") from None
    if info is None:
        raise FormatError(
            f"{path}: this .keras archive has no {WEIGHTS} member (members: {', '.join(names)});"
            " only archives with HDF5 weights are supported"
        )
    if info.compress_type != zipfile.ZIP_STORED:
        raise FormatError(
            f"{path}: {WEIGHTS} is compressed inside the archive; only stored (uncompressed) weights"
            " members, as Keras writes them, can be tracked per parameter"
        )
    if info.header_offset < 0:  # a damaged central directory can point before the file's start
        raise FormatError(f"{path}: damaged zip archive: {WEIGHTS} is said to start at byte {info.header_offset}")
    file.seek(info.header_offset)
    local = file.read(30)
    if len(local) != 30 or not local.startswith(LOCAL_SIGNATURE):
        raise FormatError(f"{path}: damaged zip archive: no local header for {WEIGHTS}")
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_length + extra_length
    crc_at: list[int] = [_central_crc_offset(file, start_dir, path)]
    if info.flag_bits & 0x08:
        file.seek(start + info.compress_size)
        crc_at.append(start + info.compress_size + (4 if file.read(4) == DESCRIPTOR_SIGNATURE else 0))
    else:
        crc_at.append(info.header_offset + 14)
    return {"start": start, "size": info.compress_size, "crc_at": sorted(crc_at)}


def _central_crc_offset(file: BinaryIO, position: int, path: str) -> int:
    while True:
        file.seek(position)
        fixed = file.read(46)
        if len(fixed) != 46 or not fixed.startswith(CENTRAL_SIGNATURE):
            raise FormatError(f"{path}: damaged zip archive: {WEIGHTS} missing from the central directory")
        name_length, extra_length, comment_length = struct.unpack("<HHH", fixed[28:34])
        if file.read(name_length) == WEIGHTS.encode():
            return position + 16
        position += 46 + name_length + extra_length + comment_length


@frozen
class KerasArchiveFormat(CheckpointFormat):
    name = KIND
    extensions = (".keras",)

    def sniff(self, head: bytes) -> bool:
        name = _first_member_name(head)
        return name is not None and (name in KERAS_MEMBERS or name.startswith("assets/"))

    def read(self, source: Source) -> Checkpoint:
        if not self.sniff(source.head):
            raise FormatError(
                f"{source.path}: not a .keras archive (a zip starting with metadata.json, config.json or"
                f" {WEIGHTS}); if it is another format, set theta-format in .gitattributes"
            )
        spooled = source.spool()
        size = spooled.stat().st_size
        file = spooled.open("rb")
        try:
            member = _locate_weights(file, source.path)
            window = Window(file, member["start"], member["size"])
            with hdf5.open_hdf5(window, f"{source.path}: {WEIGHTS}") as h5:  # type: ignore[arg-type]
                found = hdf5.regions_of(h5, base=member["start"])
            regions = check_regions(found, size, source.path)
            member["sha256"] = [_region_sha256(file, r) for r in regions]
            skeleton = cut(file, regions, kind=KIND, path=source.path, extra={"member": member})
        except BaseException:
            file.close()
            raise
        return Checkpoint(skeleton=skeleton.encode(), parameters=byteorder.tensors(file, skeleton.regions, source.path))

    def write(self, layout: Layout, sink: BinaryIO) -> None:
        skeleton = byteorder.decode(layout, KIND)
        member = _member(skeleton)
        matches = skeleton.matches(layout.parameters)
        if matches and member["sha256"] == [layout.hashes.get(r.name) for r in skeleton.regions]:
            byteorder.write(skeleton, layout, sink)  # the tensors read at commit time: the CRC-32s kept hold
            return
        with tempfile.TemporaryFile() as out:
            if matches:
                counted = _MemberCrc(out, member["start"], member["size"])
                byteorder.write(skeleton, layout, counted)  # type: ignore[arg-type]
                for position in member["crc_at"]:
                    out.seek(position)
                    out.write(struct.pack("<I", counted.crc))
            else:
                _rebuild(skeleton, layout, member, out)
            out.seek(0)
            hdf5.copy_stream(out, sink)


def _member(skeleton: Skeleton) -> dict[str, Any]:
    """Where the weights member lies (`start`, `size`), its CRC-32 fields and the tensors' sha256s at commit."""
    with reading_extra(skeleton.path):
        member = dict(skeleton.extra["member"])
        start, size = int(member["start"]), int(member["size"])
        crc_at = [int(at) for at in member["crc_at"]]
        hashes = member.get("sha256")
        if not 0 <= start <= start + size <= skeleton.size or not all(0 <= at <= skeleton.size - 4 for at in crc_at):
            raise ValueError(f"the weights member {member!r} does not fit the file")
    return {"start": start, "size": size, "crc_at": crc_at, "sha256": hashes}


def _region_sha256(file: BinaryIO, region: Region) -> str:
    """The sha256 Theta gives the region's tensor (of its little-endian bytes)."""
    file.seek(region.offset)
    return hashlib.sha256(byteorder.to_little(region, file.read(region.length))).hexdigest()


class _MemberCrc:
    """Passes writes through, computing the CRC-32 of the bytes at [start, start + size)."""

    def __init__(self, out: BinaryIO, start: int, size: int) -> None:
        self._out, self._start, self._end = out, start, start + size
        self._position = 0
        self.crc = 0

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B")
        low = max(self._start - self._position, 0)
        high = min(self._end - self._position, len(view))
        if low < high:
            self.crc = zlib.crc32(view[low:high], self.crc)
        self._position += len(view)
        return self._out.write(view)


def _rebuild(skeleton: Skeleton, layout: Layout, member: dict[str, Any], out: BinaryIO) -> None:
    """A new archive: the other members copied as they were, the weights rebuilt with h5py."""
    weights = hdf5.rebuild(skeleton, layout, member["start"], member["size"])
    with weights, tempfile.TemporaryFile() as old:
        regions = {r.name: r for r in skeleton.regions}

        def zeros(name: str) -> Tensor:  # the old weights member is replaced: its values do not matter
            r = regions[name]
            return Tensor(dtype=r.dtype, shape=r.shape, data=bytes(r.length))

        byteorder.write(skeleton, attrs.evolve(layout, load=zeros), old)
        old.seek(0)
        with zipfile.ZipFile(old) as source, zipfile.ZipFile(out, "w") as target:
            for info in source.infolist():
                if info.filename == WEIGHTS:
                    with target.open(info, "w") as dest:
                        hdf5.copy_stream(weights, dest)
                else:
                    target.writestr(info, source.read(info))
