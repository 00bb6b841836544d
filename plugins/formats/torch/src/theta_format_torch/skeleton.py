"""The skeleton: the archive with the storage records' bytes cut out, plus an index.

Layout: `MAGIC`, an 8-byte little-endian length, a JSON index, then the archive bytes with
every parameter's payload removed. The index lists each cut (in file order) with the
parameter's name, dtype and shape, and where the member's CRC-32 is written, all as offsets
of the original file. Rebuilding splices the payloads back in and rewrites the CRC-32s, so
unchanged tensors give back the committed file exactly.
"""

from __future__ import annotations

import bisect
import itertools
import json
import zlib
from collections.abc import Sequence
from functools import cached_property

import attrs
from attrs import frozen

from theta_format_torch.ziparchive import STORED, Member

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


@frozen(kw_only=True, slots=False)
class Skeleton:
    cuts: tuple[Cut, ...]
    pickle_offset: int
    pickle_size: int
    pickle_deflated: bool
    body: bytes

    @cached_property
    def _ends(self) -> list[int]:
        return [c.offset + c.nbytes for c in self.cuts]

    @cached_property
    def _removed(self) -> list[int]:
        return list(itertools.accumulate((c.nbytes for c in self.cuts), initial=0))

    def to_stripped(self, offset: int) -> int:
        """Where byte `offset` of the original file lies in `body` (it must not be inside a cut)."""
        return offset - self._removed[bisect.bisect_right(self._ends, offset)]

    def pickle_bytes(self) -> bytes:
        start = self.to_stripped(self.pickle_offset)
        raw = self.body[start : start + self.pickle_size]
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw) if self.pickle_deflated else raw

    def encode(self) -> bytes:
        index = {
            "cuts": [c.to_json() for c in self.cuts],
            "pickle": [self.pickle_offset, self.pickle_size, int(self.pickle_deflated)],
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
            pickle_offset, pickle_size, deflated = (int(v) for v in index["pickle"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SkeletonError(f"skeleton index is damaged: {exc}") from None
        return cls(
            cuts=cuts,
            pickle_offset=pickle_offset,
            pickle_size=pickle_size,
            pickle_deflated=bool(deflated),
            body=data[at + 8 + size :],
        )

    @classmethod
    def cut_out(cls, archive: memoryview, cuts: Sequence[Cut], pickle: Member) -> Skeleton:
        """The skeleton of `archive` without the payloads of `cuts` (sorted by offset, disjoint)."""
        pieces = []
        position = 0
        for cut in cuts:
            pieces.append(archive[position : cut.offset])
            position = cut.offset + cut.nbytes
        pieces.append(archive[position:])
        body = bytearray(b"".join(pieces))
        skeleton = cls(
            cuts=tuple(cuts),
            pickle_offset=pickle.data_offset,
            pickle_size=pickle.stored_size,
            pickle_deflated=pickle.method != STORED,
            body=b"",
        )
        # CRC-32s are recomputed on every write; zeroing them keeps the skeleton the same when only values change.
        for cut in cuts:
            for at in () if cut.zero_crc else cut.crc_offsets:
                stripped = skeleton.to_stripped(at)
                body[stripped : stripped + 4] = bytes(4)
        return attrs.evolve(skeleton, body=bytes(body))
