"""The `pytorch` format: files written by `torch.save` (a ZIP archive holding a pickle).

Reading never imports torch: the archive is indexed in place (memory-mapped from the
spooled file), `data.pkl` goes through a restricted unpickler, and each storage record's
bytes are read from the spooled file when the kernel asks for that tensor. The skeleton is
the kernel's (`theta.splice`): the archive without the storage records' bytes, with the
records' CRC-32 fields zeroed.
Writing splices the tensors back and sets each CRC-32 from the bytes written; only a layout
that no longer fits the skeleton needs torch (see `rebuild`).
"""

from __future__ import annotations

import json
import mmap
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from attrs import frozen

from theta.errors import FormatError
from theta.formats import Checkpoint, CheckpointFormat, Layout, Source
from theta.splice import Edit, Region, Skeleton, cut, read_tensors, reading_extra, splice
from theta.tensors import dtype
from theta_format_torch import safepickle
from theta_format_torch.archive import (
    TorchArchive,
    check_head,
    inflate,
    is_legacy,
    is_torch_zip,
    member_bytes,
    open_archive,
)
from theta_format_torch.naming import plan_parameters
from theta_format_torch.ziparchive import STORED

KIND = "pytorch"


def _map(path: Path) -> memoryview:
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        if size == 0:
            return memoryview(b"")
        return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))


def _regions(buf: memoryview, archive: TorchArchive, path: str) -> list[Region]:
    """One region per storage used, checked against the archive.

    Its `extra` holds the storage key, whether a tensor covers it whole, where the member's
    CRC-32 is written (`crc_at`) and whether torch wrote that CRC-32 as zero.
    """
    try:
        tree, _ = safepickle.load(member_bytes(buf, archive.pickle, path))
    except safepickle.Refused as exc:
        raise FormatError(
            f"{path}: refused: data.pkl calls {exc.what} ({exc.reason}); Theta never runs code that comes"
            " with a checkpoint. If you trust this file, load it with torch and save only its state_dict"
        ) from None
    except safepickle.DamagedPickle as exc:
        raise FormatError(f"{path}: data.pkl is damaged or not written by torch.save: {exc}") from None
    try:
        plans = plan_parameters(tree)
    except ValueError as exc:
        raise FormatError(f"{path}: data.pkl has an unexpected structure: {exc}") from None
    regions = []
    for plan in plans:
        member = archive.storage(plan.key)
        where = f"{path}: parameter {plan.name!r} (storage data/{plan.key})"
        if member is None:
            raise FormatError(f"{where}: the archive has no such record; the file is damaged")
        numel = 1
        for d in plan.shape:
            numel *= d
        expected = numel * dtype(plan.dtype).itemsize
        if member.method != STORED:
            raise FormatError(f"{where}: the record is compressed (ZIP method {member.method}); torch stores records")
        if member.size != expected:
            raise FormatError(
                f"{where}: the record holds {member.size} bytes, data.pkl says {plan.dtype} {list(plan.shape)}"
                f" ({expected} bytes); the file is damaged"
            )
        extra = {
            "key": plan.key, "whole": plan.whole, "crc_at": list(member.crc_offsets),
            "zero_crc": member.crc == 0 and member.size > 0,
        }  # fmt: skip
        regions.append(
            Region(
                name=plan.name, dtype=plan.dtype, shape=plan.shape, offset=member.data_offset, length=member.size,
                extra=extra,
            )
        )  # fmt: skip
    return regions


def _blank_crcs(regions: list[Region]) -> list[Edit]:
    """CRC-32s are recomputed on every write; zeroing them keeps the skeleton the same when only values change."""
    return [
        Edit(start=at, end=at + 4, data=bytes(4))
        for r in regions
        if not r.extra["zero_crc"]
        for at in r.extra["crc_at"]
    ]


def _crc32s(region: Region, data: Any) -> list[Edit]:
    """The member's CRC-32 fields (before its bytes or after them), set from the bytes written."""
    crc = 0 if region.extra["zero_crc"] else zlib.crc32(data)
    return [Edit(start=at, end=at + 4, data=crc.to_bytes(4, "little")) for at in region.extra["crc_at"]]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode_skeleton(layout: Layout) -> Skeleton:
    """The stored skeleton, with this format's fields of its index checked."""
    skeleton = Skeleton.decode(layout.skeleton, kind=KIND, path=layout.path)
    with reading_extra(layout.path):
        pickle = skeleton.extra["pickle"]
        if not (isinstance(pickle, list) and len(pickle) == 3 and all(_is_int(v) for v in pickle)):
            raise ValueError(f"pickle is {pickle!r}, not [offset, size, deflated]")
        for r in skeleton.regions:
            x = r.extra
            if not (
                isinstance(x["key"], str) and isinstance(x["whole"], bool) and isinstance(x["zero_crc"], bool)
                and isinstance(x["crc_at"], list) and all(_is_int(at) for at in x["crc_at"])
            ):  # fmt: skip
                raise ValueError(f"parameter {r.name!r} has malformed fields {dict(x)!r}")
    return skeleton


def pickle_bytes(skeleton: Skeleton) -> bytes:
    """The `data.pkl` that the skeleton keeps (inflated if it was deflated)."""
    offset, size, deflated = skeleton.extra["pickle"]
    raw = bytes(skeleton.kept(offset, offset + size))
    return inflate(raw, None, "data.pkl of a stored skeleton") if deflated else raw


@frozen
class TorchFormat(CheckpointFormat):
    name = KIND
    extensions = (".pt", ".pth", ".bin", ".ckpt")

    def sniff(self, head: bytes) -> bool:
        """A ZIP archive whose first member is `<archive>/data.pkl`, or a legacy torch pickle.

        `.bin` is claimed only through this check: other `.bin` files do not start this way.
        Legacy files are claimed so that reading them can say how to convert them.
        """
        return is_torch_zip(head) or is_legacy(head)

    def read(self, source: Source) -> Checkpoint:
        check_head(source.head, source.path)
        buf = _map(source.spool())
        archive = open_archive(buf, source.path)
        regions = _regions(buf, archive, source.path)
        pickle = archive.pickle
        skeleton = cut(
            buf, regions, kind=KIND, path=source.path, overwrite=_blank_crcs(regions),
            extra={"pickle": [pickle.data_offset, pickle.stored_size, int(pickle.method != STORED)]},
        )  # fmt: skip
        # Tensors are read from the spool one at a time, not viewed in the map: pages of a map
        # stay resident once touched, and the filter's memory would follow the checkpoint.
        spooled = source.spool().open("rb")
        return Checkpoint(
            skeleton=skeleton.encode(),
            parameters=read_tensors(spooled, skeleton.regions, path=source.path, close=True),
        )

    def skeleton_state(self, skeleton: bytes) -> bytes:
        """The pickle (every non-tensor value, and which storage each tensor uses) and each
        storage's name, dtype and shape: not the serialization id torch derives from the data."""
        try:
            decoded = decode_skeleton(Layout(skeleton=skeleton, parameters={}, load=lambda _: None))  # type: ignore[arg-type, return-value]
            storages = [[r.name, r.dtype, list(r.shape), r.extra["key"]] for r in decoded.regions]
            return json.dumps(storages).encode() + b"\n" + pickle_bytes(decoded)
        except (FormatError, ValueError, KeyError, zlib.error):
            return skeleton

    def write(self, layout: Layout, sink: BinaryIO) -> None:
        skeleton = decode_skeleton(layout)
        if skeleton.matches(layout.parameters):
            splice(skeleton, layout, sink, patch=_crc32s)
            return
        from theta_format_torch.rebuild import rebuild

        rebuild(skeleton, layout, sink)
