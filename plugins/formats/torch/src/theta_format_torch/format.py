"""The `pytorch` format: files written by `torch.save` (a ZIP archive holding a pickle).

Reading never imports torch: the archive is indexed in place (memory-mapped from the
spooled file), `data.pkl` goes through a restricted unpickler, and each storage record's
bytes are handed out as a view of the mapping. Writing splices the tensors back into the
skeleton; only a layout that no longer fits the skeleton needs torch (see `rebuild`).
"""

from __future__ import annotations

import itertools
import mmap
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from attrs import frozen

from theta.errors import FormatError
from theta.formats import Checkpoint, CheckpointFormat, Layout, Source, TensorInfo
from theta.tensors import Tensor, dtype
from theta_format_torch import safepickle
from theta_format_torch.archive import TorchArchive, check_head, is_legacy, is_torch_zip, member_bytes, open_archive
from theta_format_torch.naming import plan_parameters
from theta_format_torch.skeleton import Cut, Skeleton, SkeletonError
from theta_format_torch.ziparchive import STORED


def _map(path: Path) -> memoryview:
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        if size == 0:
            return memoryview(b"")
        return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))


def _load_tree(buf: memoryview, archive: TorchArchive, path: str) -> list[Cut]:
    """The cuts (one per storage used), checked against the archive, sorted by offset."""
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
    cuts = []
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
        cuts.append(
            Cut(
                name=plan.name,
                key=plan.key,
                dtype=plan.dtype,
                shape=plan.shape,
                whole=plan.whole,
                offset=member.data_offset,
                nbytes=member.size,
                crc_offsets=member.crc_offsets,
                zero_crc=member.crc == 0 and member.size > 0,
            )
        )
    cuts.sort(key=lambda c: c.offset)
    for before, after in itertools.pairwise(cuts):
        if before.offset + before.nbytes > after.offset:
            raise FormatError(f"{path}: storage records {before.key!r} and {after.key!r} overlap; the file is damaged")
    return cuts


def _tensors(buf: memoryview, cuts: list[Cut]) -> Iterator[tuple[str, Tensor]]:
    for cut in cuts:
        yield cut.name, Tensor(dtype=cut.dtype, shape=cut.shape, data=buf[cut.offset : cut.offset + cut.nbytes])


def _splice(skeleton: Skeleton, layout: Layout, sink: BinaryIO) -> None:
    """Write the skeleton with each payload put back; CRC-32 fields (before or after it) are set first."""
    body = bytearray(skeleton.body)
    view = memoryview(body)
    position = 0
    for cut in skeleton.cuts:
        data = layout.load(cut.name).data
        if len(data) != cut.nbytes:
            raise FormatError(f"parameter {cut.name!r}: loaded {len(data)} bytes, the archive needs {cut.nbytes}")
        crc = 0 if cut.zero_crc else zlib.crc32(data)
        for at in cut.crc_offsets:
            stripped = skeleton.to_stripped(at)
            body[stripped : stripped + 4] = crc.to_bytes(4, "little")
        start = skeleton.to_stripped(cut.offset)
        sink.write(view[position:start])
        sink.write(data)
        position = start
    sink.write(view[position:])


@frozen
class TorchFormat(CheckpointFormat):
    name = "pytorch"
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
        cuts = _load_tree(buf, archive, source.path)
        skeleton = Skeleton.cut_out(buf, cuts, archive.pickle)
        return Checkpoint(skeleton=skeleton.encode(), parameters=_tensors(buf, cuts))

    def write(self, layout: Layout, sink: BinaryIO) -> None:
        try:
            skeleton = Skeleton.decode(layout.skeleton)
        except SkeletonError as exc:
            raise FormatError(f"cannot write a PyTorch checkpoint: {exc}") from None
        stored = {c.name: TensorInfo(dtype=c.dtype, shape=c.shape) for c in skeleton.cuts}
        if stored == dict(layout.parameters):
            _splice(skeleton, layout, sink)
            return
        from theta_format_torch.rebuild import rebuild

        rebuild(skeleton, layout, sink)
