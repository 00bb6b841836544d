"""The skeleton: the archive with the storage records' bytes cut out, plus an index.

Layout: `MAGIC`, an 8-byte little-endian length, a JSON index, then the archive bytes with
every parameter's payload removed. The index lists each cut (in file order) with the
parameter's name, dtype and shape, and where the member's CRC-32 is written, all as offsets
of the original file. Rebuilding splices the payloads back in and rewrites the CRC-32s, so
unchanged tensors give back the committed file exactly.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence

from attrs import frozen

MAGIC = b"theta-torch-skeleton 1\n"


class SkeletonError(Exception):
    """The skeleton bytes are not ones this plugin wrote."""


@frozen(kw_only=True)
class Cut:
    """One storage record whose payload is a parameter."""

    name: str
    key: str
    dtype: str
    shape: tuple[int, ...]
    whole: bool
    offset: int
    nbytes: int
    crc_offsets: tuple[int, ...]
    zero_crc: bool

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name, "key": self.key, "dtype": self.dtype, "shape": list(self.shape),
            "whole": self.whole, "offset": self.offset, "nbytes": self.nbytes,
            "crc_offsets": list(self.crc_offsets), "zero_crc": self.zero_crc,
        }  # fmt: skip

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> Cut:
        return cls(
            name=str(raw["name"]),
            key=str(raw["key"]),
            dtype=str(raw["dtype"]),
            shape=tuple(int(d) for d in raw["shape"]),  # type: ignore[attr-defined]
            whole=bool(raw["whole"]),
            offset=int(raw["offset"]),  # type: ignore[call-overload]
            nbytes=int(raw["nbytes"]),  # type: ignore[call-overload]
            crc_offsets=tuple(int(o) for o in raw["crc_offsets"]),  # type: ignore[attr-defined]
            zero_crc=bool(raw["zero_crc"]),
        )


@frozen(kw_only=True)
class Skeleton:
    cuts: tuple[Cut, ...]
    pickle_offset: int
    pickle_size: int
    body: bytes

    def to_stripped(self, offset: int) -> int:
        """Where byte `offset` of the original file lies in `body` (it must not be inside a cut)."""
        ends = [c.offset + c.nbytes for c in self.cuts]
        removed = 0
        index = bisect.bisect_right(ends, offset)
        for cut in self.cuts[:index]:
            removed += cut.nbytes
        return offset - removed

    def pickle_bytes(self) -> bytes:
        start = self.to_stripped(self.pickle_offset)
        return self.body[start : start + self.pickle_size]

    def encode(self) -> bytes:
        index = {
            "cuts": [c.to_json() for c in self.cuts],
            "pickle": [self.pickle_offset, self.pickle_size],
        }
        raw = json.dumps(index, separators=(",", ":"), sort_keys=True).encode()
        return MAGIC + len(raw).to_bytes(8, "little") + raw + self.body

    @classmethod
    def decode(cls, data: bytes) -> Skeleton:
        if not data.startswith(MAGIC):
            raise SkeletonError("not a skeleton written by theta-format-torch")
        at = len(MAGIC)
        size = int.from_bytes(data[at : at + 8], "little")
        try:
            index = json.loads(data[at + 8 : at + 8 + size])
            cuts = tuple(Cut.from_json(c) for c in index["cuts"])
            pickle_offset, pickle_size = (int(v) for v in index["pickle"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SkeletonError(f"skeleton index is damaged: {exc}") from None
        return cls(cuts=cuts, pickle_offset=pickle_offset, pickle_size=pickle_size, body=data[at + 8 + size :])

    @classmethod
    def cut_out(cls, archive: memoryview, cuts: Sequence[Cut], pickle_offset: int, pickle_size: int) -> Skeleton:
        """The skeleton of `archive` without the payloads of `cuts` (sorted by offset, disjoint)."""
        pieces = []
        position = 0
        for cut in cuts:
            pieces.append(archive[position : cut.offset])
            position = cut.offset + cut.nbytes
        pieces.append(archive[position:])
        return cls(cuts=tuple(cuts), pickle_offset=pickle_offset, pickle_size=pickle_size, body=b"".join(pieces))
