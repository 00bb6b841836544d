"""NumPy `.npz` archives (`numpy.savez`): a ZIP archive of `.npy` files, one per array.

Reading: each stored `<name>.npy` member's array bytes are one run of the file; they are cut
out as the parameter `<name>`. The skeleton is the rest of the file (ZIP headers, `.npy`
headers, any other member), with the CRC-32 fields of the cut members blanked, plus a JSON
line saying where each array goes. Writing splices the arrays back and computes each CRC-32
again, so the original file comes back byte for byte, and a changed array gives a valid file
whose skeleton is the same. When the arrays no longer match the skeleton's (names, dtypes or
shapes, after a merge), a new archive is written as `numpy.savez` would.
"""

from __future__ import annotations

import json
import mmap
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from theta.errors import FormatError
from theta.formats import Checkpoint, CheckpointFormat, Layout, Source
from theta.tensors import Tensor, dtype
from theta_format_npz import npy, zipindex

SKELETON_MAGIC = b"THETA-NPZ1\n"
SUFFIX = ".npy"


def _first_member_name(head: bytes) -> bytes | None:
    if not head.startswith(zipindex.LOCAL) or len(head) < 30:
        return None
    length = int.from_bytes(head[26:28], "little")
    return head[30 : 30 + length] if len(head) >= 30 + length else None


def _map(path: Path) -> mmap.mmap | bytes:
    with path.open("rb") as handle:
        if handle.seek(0, 2) == 0:
            return b""
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


class NpzFormat(CheckpointFormat):
    name = "npz"
    extensions = (".npz",)

    def sniff(self, head: bytes) -> bool:
        name = _first_member_name(head)
        return name is not None and name.endswith(SUFFIX.encode())

    def read(self, source: Source) -> Checkpoint:
        if not self.sniff(source.head):
            raise FormatError(
                f"{source.path}: not a NumPy .npz archive (a ZIP archive whose first member is an .npy file);"
                " if it is another format, set theta-format in .gitattributes"
            )
        buf = _map(source.spool())
        try:
            cuts, crcs = self._index(buf, source.path)
        except zipindex.ZipError as exc:
            raise FormatError(f"{source.path}: not a readable .npz archive: {exc}") from None
        kept = bytearray()
        position = 0
        for cut in cuts:
            kept += buf[position : cut["start"]]
            position = cut["start"] + cut["length"]
        kept += buf[position:]
        for fields in crcs:
            for at in fields["fields"]:
                local = _kept_offset(at, cuts)
                kept[local : local + 4] = b"\0\0\0\0"
        meta = json.dumps({"cuts": cuts, "crcs": crcs}, separators=(",", ":")).encode()
        skeleton = SKELETON_MAGIC + meta + b"\n" + bytes(kept)
        return Checkpoint(skeleton=skeleton, parameters=self._tensors(buf, cuts))

    def _index(self, buf: Any, path: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        cuts: list[dict[str, Any]] = []
        crcs: list[dict[str, Any]] = []
        names: set[str] = set()
        for member in sorted(zipindex.members(buf), key=lambda m: m.start):
            if not member.name.endswith(SUFFIX):
                continue  # not an array: kept in the skeleton as it is
            where = f"{path}: member {member.name!r}"
            if member.method != zipindex.STORED:
                raise FormatError(
                    f"{where} is compressed (numpy.savez_compressed); Theta stores arrays uncompressed and"
                    " compresses what pays itself: save the arrays with numpy.savez"
                )
            try:
                header = npy.parse(bytes(buf[member.start : member.start + min(member.size, npy.MAX_HEADER + 12)]))
            except npy.NpyError as exc:
                raise FormatError(f"{where}: {exc}") from None
            numel = 1
            for d in header.shape:
                numel *= d
            nbytes = numel * dtype(header.dtype).itemsize
            if header.length + nbytes != member.size:
                raise FormatError(
                    f"{where}: its header claims {header.dtype} {list(header.shape)} ({nbytes} bytes), the member"
                    f" holds {member.size - header.length} bytes of data"
                )
            name = member.name[: -len(SUFFIX)]
            if name in names:
                raise FormatError(f"{path}: array {name!r} appears twice")
            names.add(name)
            if cuts and member.start < cuts[-1]["start"] + cuts[-1]["length"]:
                raise FormatError(f"{where} overlaps the member before it; the archive is damaged")
            start = member.start + header.length
            cuts.append({"name": name, "start": start, "length": nbytes, "dtype": header.dtype, "shape": header.shape})
            crcs.append({"begin": member.start, "fields": list(member.crc_fields)})
        if not cuts:
            raise FormatError(f"{path}: the archive holds no .npy array")
        return cuts, crcs

    def _tensors(self, buf: Any, cuts: list[dict[str, Any]]) -> Iterator[tuple[str, Tensor]]:
        try:
            for cut in cuts:
                data = bytearray(buf[cut["start"] : cut["start"] + cut["length"]])
                yield cut["name"], Tensor(dtype=cut["dtype"], shape=cut["shape"], data=data)
        finally:
            if isinstance(buf, mmap.mmap):
                buf.close()

    def write(self, layout: Layout, sink: BinaryIO) -> None:
        meta, kept = _skeleton(layout)
        cuts = meta["cuts"]
        wanted = [(c["name"], c["dtype"], tuple(c["shape"])) for c in cuts]
        given = [(n, i.dtype, tuple(i.shape)) for n, i in layout.parameters.items()]
        if wanted != given:
            _rebuild(layout, sink)
            return
        kept = bytearray(kept)
        position = 0
        for cut, member in zip(cuts, meta["crcs"], strict=True):
            data = layout.load(cut["name"]).data
            header = kept[_kept_offset(member["begin"], cuts) : _kept_offset(cut["start"], cuts)]
            crc = zlib.crc32(data, zlib.crc32(header)).to_bytes(4, "little")
            for at in member["fields"]:
                local = _kept_offset(at, cuts)
                kept[local : local + 4] = crc
            end = _kept_offset(cut["start"], cuts)
            sink.write(kept[position:end])
            sink.write(data)
            position = end
        sink.write(kept[position:])


def _kept_offset(at: int, cuts: list[dict[str, Any]]) -> int:
    """Where byte `at` of the original file is in the skeleton's kept bytes (`at` is in no cut)."""
    return at - sum(c["length"] for c in cuts if c["start"] < at)


def _skeleton(layout: Layout) -> tuple[dict[str, Any], bytes]:
    skeleton = layout.skeleton
    if not skeleton.startswith(SKELETON_MAGIC):
        raise FormatError(f"{layout.path}: the stored skeleton is not an npz skeleton; upgrade theta-format-npz")
    line_end = skeleton.find(b"\n", len(SKELETON_MAGIC))
    try:
        meta = json.loads(skeleton[len(SKELETON_MAGIC) : line_end])
    except (ValueError, RecursionError):
        raise FormatError(f"{layout.path}: the stored npz skeleton is damaged") from None
    return meta, skeleton[line_end + 1 :]


def _rebuild(layout: Layout, sink: BinaryIO) -> None:
    """A new archive holding `layout`'s arrays, in its order, as numpy.savez writes one."""
    with tempfile.TemporaryFile() as spool:
        with zipfile.ZipFile(spool, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, info in layout.parameters.items():
                if info.dtype not in npy.FROM_THETA:
                    raise FormatError(f"{layout.path}: array {name!r} is {info.dtype}, which .npy cannot hold")
                member = zipfile.ZipInfo(name + SUFFIX, date_time=(1980, 1, 1, 0, 0, 0))
                data = layout.load(name).data
                with archive.open(member, "w", force_zip64=len(data) > 1 << 31) as out:
                    out.write(npy.build(info.dtype, tuple(info.shape)))
                    out.write(data)
        spool.seek(0)
        shutil.copyfileobj(spool, sink, 1 << 22)
