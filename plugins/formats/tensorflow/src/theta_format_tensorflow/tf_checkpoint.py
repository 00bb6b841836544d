"""`tf-checkpoint`: the data shards of TensorFlow checkpoints (`tf.train.Checkpoint.save`).

A save writes `ckpt-1.index` and one or more `ckpt-1.data-SSSSS-of-NNNNN` shards. The shard
is raw tensor bytes with nothing to describe them; the index says which key lies where. So
the data shard is the tracked file: when git cleans it, the sibling index is read from the
working tree (same prefix, `.index`), and the shard's numeric tensors become parameters
named by their checkpoint keys. Everything else in the shard (string tensors such as the
object graph, alignment padding) stays in the skeleton. The index itself is small and is
committed as an ordinary file. A checkout needs only the skeleton, never the index.

The reader checks that the index fits the shard: the shard's size, each tensor's place and
size, and the CRC of its string tensors (the object graph). It does not check numeric
tensors' CRCs: after a merge the shard holds new values while the index still has the old
CRCs, and the shard must stay readable; `refresh_index` makes the index agree again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

from attrs import frozen

from theta.errors import FormatError
from theta.formats import Checkpoint, CheckpointFormat, Layout, Source
from theta.splice import Region, check_regions, cut, nbytes, reading_extra
from theta_format_tensorflow import byteorder
from theta_format_tensorflow.tf_index import (
    DT_STRING,
    Entry,
    Index,
    masked_crc32c,
    parse_index,
    refresh_crcs,
    slice_key_name,
    string_tensor_crc,
)

KIND = "tf-checkpoint"
SHARD_NAME = re.compile(r"^(?P<prefix>.+)\.data-(?P<shard>\d{5})-of-(?P<count>\d{5})$")


def index_path_for(data_path: str) -> tuple[Path, int, int]:
    """The index beside a data shard, the shard's number and the shard count."""
    path = Path(data_path)
    match = SHARD_NAME.match(path.name)
    if match is None:
        raise FormatError(
            f"{data_path}: tf-checkpoint tracks the data shards of a TensorFlow checkpoint"
            " (`ckpt-1.data-00000-of-00001`); this name is not one. Track the data shard, not the index"
        )
    return path.with_name(match["prefix"] + ".index"), int(match["shard"]), int(match["count"])


def key_name(key: bytes) -> str:
    """The parameter name of a checkpoint key: the key itself, `name[0:11,:]` for a slice."""
    sliced = slice_key_name(key)
    if sliced is not None:
        return sliced
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + key.hex()


def regions_of(index: Index, shard: int, path: str) -> tuple[list[Region], list[Entry]]:
    """The shard's numeric tensors as regions, and all its entries (numeric or not)."""
    order = ">" if index.header.big_endian else "<"
    here = [e for e in index.entries if e.shard == shard and not (e.sliced and e.size == 0)]
    regions: list[Region] = []
    for e in here:
        if e.dtype is not None and e.size > 0 and e.size == nbytes(e.dtype, e.shape):
            regions.append(byteorder.region(key_name(e.key), e.dtype, e.shape, e.offset, e.size, order))
    return regions, here


@frozen
class TFCheckpointFormat(CheckpointFormat):
    name = KIND
    extensions = (".data-00000-of-00001",)

    def sniff(self, head: bytes) -> bool:
        """A data shard has no signature of its own: it is chosen by name or `theta-format`."""
        return False

    def read(self, source: Source) -> Checkpoint:
        index_path, shard, count = index_path_for(source.path)
        try:
            index_bytes = index_path.read_bytes()
        except OSError:
            raise FormatError(
                f"{source.path}: the checkpoint index {index_path.name} is not beside this data shard in the"
                " working tree; TensorFlow writes both: keep them together and add them in the same commit"
            ) from None
        index = parse_index(index_bytes, str(index_path))
        if index.header.num_shards != count:
            raise FormatError(
                f"{source.path}: the name says {count} shards, {index_path.name} says {index.header.num_shards};"
                " the index belongs to another save"
            )
        regions, entries = regions_of(index, shard, source.path)
        spooled = source.spool()
        size = spooled.stat().st_size
        end = max((e.offset + e.size for e in entries), default=0)
        if size < end:
            raise FormatError(
                f"{source.path}: file is truncated: {index_path.name} places tensors up to byte {end},"
                f" the shard has {size}"
            )
        if size > end:
            raise FormatError(
                f"{source.path}: the shard has {size} bytes, {index_path.name} describes {end};"
                " the index belongs to another save (add the index and data files of the same save together)"
            )
        file = spooled.open("rb")
        try:
            regions = check_regions(regions, size, source.path)
            numeric = {r.name for r in regions}
            for e in entries:
                if key_name(e.key) not in numeric and e.dtype_code == DT_STRING:
                    file.seek(e.offset)
                    numel = 1
                    for d in e.shape:
                        numel *= d
                    if string_tensor_crc(file.read(e.size), numel) != e.crc32c:
                        raise FormatError(
                            f"{source.path}: entry {key_name(e.key)!r} does not match the CRC in"
                            f" {index_path.name}; the index belongs to another save"
                        )
            skeleton = cut(file, regions, kind=KIND, path=source.path, extra={"index": index_path.name, "shard": shard})
        except BaseException:
            file.close()
            raise
        return Checkpoint(skeleton=skeleton.encode(), parameters=byteorder.tensors(file, skeleton.regions, source.path))

    def write(self, layout: Layout, sink: BinaryIO) -> None:
        skeleton = byteorder.decode(layout, KIND)
        if not skeleton.matches(layout.parameters):
            changed = skeleton.differences(layout.parameters)
            with reading_extra(layout.path):
                index = str(skeleton.extra["index"])
            raise FormatError(
                f"{layout.path}: parameters {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''} no longer"
                f" match the shard's layout; a data shard cannot change a tensor's shape, dtype or presence without"
                f" a new {index}. Load the checkpoint in TensorFlow, fix it, and save it again"
            )
        byteorder.write(skeleton, layout, sink)


def refresh_index(index_path: Path) -> list[str]:
    """Rewrite the CRCs in `index_path` from the data shards beside it; return the keys that changed.

    After a merge or a hand edit changed tensors of a shard, TensorFlow rejects the
    unchanged index ("checksum does not match"); this makes the index agree with its shards.
    """
    data = index_path.read_bytes()
    index = parse_index(data, str(index_path))
    prefix = index_path.name[: -len(".index")]
    crcs: dict[bytes, int] = {}
    changed: list[str] = []
    for shard in range(index.header.num_shards):
        shard_path = index_path.with_name(f"{prefix}.data-{shard:05d}-of-{index.header.num_shards:05d}")
        with shard_path.open("rb") as file:
            for e in index.entries:
                if e.shard != shard or e.size == 0 or e.dtype is None:
                    continue
                file.seek(e.offset)
                crc = masked_crc32c(file.read(e.size))
                if crc != e.crc32c:
                    crcs[e.key] = crc
                    changed.append(key_name(e.key))
    if crcs:
        index_path.write_bytes(refresh_crcs(data, crcs, str(index_path)))
    return changed
