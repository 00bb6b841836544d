"""Skeletons: a checkpoint file without its tensors' bytes, an index of where they were, and the way back.

Many formats keep each tensor as one run of bytes at a known place of the file (a ZIP member,
an HDF5 dataset, a protobuf field). Such a format can hand the kernel the file cut in two: the
tensors, and a skeleton that is everything else. This module is that cut, for any format:

    skeleton = b"theta-skeleton 1 " + kind + b"\\n" + u64 little-endian index length + JSON index + body

- `kind` names the format (and its variant) that wrote the skeleton; `decode` refuses another.
- The JSON index lists the cut regions in file order (parameter name, dtype, shape, offset and
  length in the original file, and each region's `extra` fields of the format's own), the
  original file size and the format's file-level `extra` fields.
- The body is the original file with the regions removed.

Reading: find the regions, `cut` the file (a seekable binary file or a buffer such as a memory
map) into a `Skeleton`, and hand the kernel `skeleton.encode()` and `read_tensors(...)`, which
reads one tensor at a time. Writing: `Skeleton.decode(layout.skeleton, ...)`, then `splice`
writes the body with each tensor put back, loading one tensor at a time through `Layout.load`,
so an unchanged layout gives back the original file byte for byte.

What else depends on the tensors stays with the format, layered on these hooks: `decode` and
`encode` change how a tensor's bytes lie in the file (byte order, packed integers), `edits`
replace spans of the kept bytes (a length prefix that changed), and `patch` computes edits from
each tensor as it is written (a checksum stored after, or before, its bytes). Offsets are
always offsets of the original file; `Skeleton.to_stripped` and `to_original` map them to and
from the body. Anything inconsistent (overlapping or out-of-range regions, a damaged index, a
length that does not match dtype and shape) is a `FormatError` naming the file.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import mmap
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any, BinaryIO

from attrs import field, frozen

from theta.errors import FormatError, ThetaError
from theta.formats import Layout, TensorInfo
from theta.tensors import Tensor, dtype

__all__ = [
    "MAGIC",
    "Edit",
    "Region",
    "Skeleton",
    "check_regions",
    "cut",
    "kind_of",
    "nbytes",
    "raw",
    "read_tensors",
    "reading_extra",
    "splice",
]

MAGIC = b"theta-skeleton "
VERSION = 1
MAX_TAG = 256  # the tag line (magic, version, kind) is shorter than this

Buffer = bytes | bytearray | memoryview | mmap.mmap
Source = Buffer | BinaryIO
Decode = Callable[["Region", memoryview], Any]
Encode = Callable[["Region", Tensor], Any]
Patch = Callable[["Region", Any], Iterable["Edit"]]


def nbytes(dtype_name: str, shape: Sequence[int]) -> int:
    """How many bytes a tensor of `dtype_name` and `shape` holds."""
    size = dtype(dtype_name).itemsize
    for d in shape:
        size *= d
    return size


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in value)


@frozen(kw_only=True)
class Region:
    """The bytes `[offset, offset + length)` of the file that hold parameter `name`.

    `length` is `nbytes(dtype, shape)` unless `encoded`: the file then holds the tensor in an
    encoding of the format's own (packed varints) and the format supplies `decode`/`encode`.
    `extra` holds the format's own fields for this region (JSON values).
    """

    name: str
    dtype: str
    shape: tuple[int, ...] = field(converter=_shape)
    offset: int
    length: int
    encoded: bool = False
    extra: Mapping[str, Any] = field(factory=dict)

    @property
    def end(self) -> int:
        return self.offset + self.length

    @property
    def nbytes(self) -> int:
        return nbytes(self.dtype, self.shape)

    @property
    def info(self) -> TensorInfo:
        return TensorInfo(dtype=self.dtype, shape=self.shape)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "dtype": self.dtype, "shape": list(self.shape), "offset": self.offset,
            "length": self.length, "encoded": self.encoded, "extra": dict(self.extra),
        }  # fmt: skip

    @classmethod
    def from_json(cls, raw: Any) -> Region:
        """A region from its index entry; `ValueError` says what is wrong with the entry."""
        if not isinstance(raw, dict):
            raise ValueError(f"a region is {type(raw).__name__}, not an object")
        shape = raw.get("shape")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise ValueError(f"region {raw.get('name')!r}: shape {shape!r} is not a list of sizes")
        for key, kind in (("name", str), ("dtype", str), ("encoded", bool), ("extra", dict)):
            if not isinstance(raw.get(key), kind):
                raise ValueError(f"region {raw.get('name')!r}: {key} is missing or not a {kind.__name__}")
        for key in ("offset", "length"):
            if not _is_int(raw.get(key)):
                raise ValueError(f"region {raw['name']!r}: {key} is missing or not an integer")
        return cls(
            name=raw["name"], dtype=raw["dtype"], shape=shape, offset=raw["offset"], length=raw["length"],
            encoded=raw["encoded"], extra=raw["extra"],
        )  # fmt: skip


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@frozen(kw_only=True)
class Edit:
    """Replace bytes `[start, end)` of the original file with `data` (`start == end`: insert).

    An edit lies between regions, never inside one. An insertion at a region's offset comes
    before the region's bytes.
    """

    start: int
    end: int
    data: bytes = field(default=b"", converter=bytes)


def check_regions(
    regions: Iterable[Region], size: int, path: str, damaged: str = "the file is damaged"
) -> tuple[Region, ...]:
    """The regions in file order, checked against a file of `size` bytes.

    Refuses (`FormatError` naming `path`, ending with `damaged`) a name used twice, an unknown
    dtype, a length that is not dtype times shape (unless encoded), a negative offset, regions
    that overlap, and one that runs past the end of the file.
    """
    ordered = tuple(sorted(regions, key=lambda r: (r.offset, r.length, r.name)))
    names: set[str] = set()
    before: Region | None = None
    for r in ordered:
        where = f"{path}: parameter {r.name!r}"
        if r.name in names:
            raise FormatError(f"{where} appears twice; {damaged}")
        names.add(r.name)
        try:
            expected = r.nbytes
        except ThetaError as exc:
            raise FormatError(f"{where}: {exc}; {damaged}") from None
        if r.offset < 0 or r.length < 0 or any(d < 0 for d in r.shape):
            raise FormatError(f"{where}: negative offset, length or size ({r.offset}, {r.length}); {damaged}")
        if not r.encoded and r.length != expected:
            raise FormatError(
                f"{where}: {r.length} bytes stored for {r.dtype} {list(r.shape)}, which needs {expected}; {damaged}"
            )
        if before is not None and r.offset < before.end:
            raise FormatError(
                f"{where} (bytes {r.offset} to {r.end}) overlaps parameter {before.name!r}"
                f" (bytes {before.offset} to {before.end}); {damaged}"
            )
        if r.end > size:
            raise FormatError(
                f"{path}: file is truncated: parameter {r.name!r} needs bytes up to offset {r.end},"
                f" the file has {size}; {damaged}"
            )
        before = r
    return ordered


def _check_kind(_: Any, __: Any, kind: str) -> None:
    if not kind or not kind.isascii() or not kind.isprintable() or " " in kind:
        raise ValueError(f"a skeleton kind is printable ASCII without spaces, not {kind!r}")


@frozen(kw_only=True, slots=False)
class Skeleton:
    """A file of `size` bytes cut at `regions` (in file order): `body` is every other byte.

    `kind` names the format that wrote it; `extra` holds the format's file-level fields (JSON
    values); `path` names the file in error messages and is not stored.
    """

    kind: str = field(validator=_check_kind)
    size: int
    regions: tuple[Region, ...] = field(converter=tuple)
    body: bytes
    extra: Mapping[str, Any] = field(factory=dict)
    path: str = field(default="checkpoint", eq=False)

    @cached_property
    def _ends(self) -> list[int]:
        return [r.end for r in self.regions]

    @cached_property
    def _removed(self) -> list[int]:
        """`_removed[i]`: how many bytes the regions before region `i` took out."""
        return list(itertools.accumulate((r.length for r in self.regions), initial=0))

    @cached_property
    def _inserts(self) -> list[int]:
        """Where each region goes back into the body."""
        return [r.offset - removed for r, removed in zip(self.regions, self._removed, strict=False)]

    @cached_property
    def parameters(self) -> dict[str, TensorInfo]:
        """Each region's parameter with its dtype and shape, in file order."""
        return {r.name: r.info for r in self.regions}

    def matches(self, parameters: Mapping[str, TensorInfo]) -> bool:
        """True when `parameters` are exactly the regions' names, dtypes and shapes."""
        return self.parameters == dict(parameters)

    def differences(self, parameters: Mapping[str, TensorInfo]) -> list[str]:
        """The names, sorted, that `parameters` adds, drops or gives another dtype or shape."""
        stored, wanted = self.parameters, dict(parameters)
        return sorted(n for n in stored.keys() | wanted.keys() if stored.get(n) != wanted.get(n))

    def to_stripped(self, offset: int) -> int:
        """Where byte `offset` of the original file lies in `body`.

        `offset` must not lie inside a region; a region's own offset maps to the place where
        its bytes go back, and so does its end.
        """
        if not 0 <= offset <= self.size:
            raise FormatError(f"{self.path}: offset {offset} lies outside the file ({self.size} bytes)")
        i = bisect.bisect_right(self._ends, offset)
        if i < len(self.regions) and self.regions[i].offset < offset:
            r = self.regions[i]
            raise FormatError(f"{self.path}: offset {offset} lies inside parameter {r.name!r} ({r.offset} to {r.end})")
        return offset - self._removed[i]

    def to_original(self, stripped: int) -> int:
        """The offset in the original file of byte `stripped` of `body` (or of its end)."""
        if not 0 <= stripped <= len(self.body):
            raise FormatError(f"{self.path}: body offset {stripped} lies outside the body ({len(self.body)} bytes)")
        return stripped + self._removed[bisect.bisect_right(self._inserts, stripped)]

    def kept(self, start: int, end: int) -> memoryview:
        """The original file's bytes `[start, end)`, which must lie between two regions."""
        low, high = self.to_stripped(start), self.to_stripped(end)
        if high - low != end - start:
            raise FormatError(f"{self.path}: bytes {start} to {end} are not all kept in the skeleton")
        return memoryview(self.body)[low:high]

    def encode(self) -> bytes:
        index = {
            "size": self.size,
            "regions": [r.to_json() for r in self.regions],
            "extra": dict(self.extra),
        }
        text = json.dumps(index, separators=(",", ":"), sort_keys=True).encode()
        tag = MAGIC + f"{VERSION} {self.kind}\n".encode()
        return tag + len(text).to_bytes(8, "little") + text + self.body

    @classmethod
    def decode(cls, data: bytes | memoryview, *, kind: str | Collection[str], path: str) -> Skeleton:
        """The skeleton in `data`, which must be of `kind` (one name, or any of several)."""
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        version, found, at = _tag(data, path)
        if found not in kinds:
            raise FormatError(
                f"{path}: the stored skeleton was written for {found!r}, not {' or '.join(map(repr, kinds))};"
                " check the file's theta-format attribute"
            )
        if version != VERSION:
            raise FormatError(
                f"{path}: the stored skeleton has version {version}; this theta-kernel reads version {VERSION}:"
                " upgrade theta-kernel"
            )
        damaged = f"{path}: the stored skeleton's index is damaged"
        if len(data) < at + 8:
            raise FormatError(f"{damaged}: it is cut short")
        length = int.from_bytes(data[at : at + 8], "little")
        start = at + 8
        if start + length > len(data):
            raise FormatError(f"{damaged}: it needs {length} bytes, {len(data) - start} remain")
        try:
            index = json.loads(bytes(data[start : start + length]))
            if not isinstance(index, dict):
                raise ValueError("it is not a JSON object")
            size, extra, entries = index.get("size"), index.get("extra"), index.get("regions")
            if not _is_int(size) or not isinstance(extra, dict) or not isinstance(entries, list):
                raise ValueError("it needs an integer size, an extra object and a list of regions")
            regions = [Region.from_json(r) for r in entries]
        except ValueError as exc:
            raise FormatError(f"{damaged}: {exc}") from None
        ordered = check_regions(regions, size, path, "the stored skeleton is damaged")
        if [r.name for r in ordered] != [r.name for r in regions]:
            raise FormatError(f"{damaged}: its regions are not in file order")
        body = bytes(data[start + length :])
        if len(body) + sum(r.length for r in ordered) != size:
            raise FormatError(
                f"{damaged}: the body holds {len(body)} bytes, the index says {size - sum(r.length for r in ordered)}"
            )
        return cls(kind=found, size=size, regions=ordered, body=body, extra=extra, path=path)


def _tag(data: bytes | memoryview, path: str) -> tuple[int, str, int]:
    """(version, kind, end of the tag line) of a skeleton; `FormatError` when there is none."""
    head = bytes(data[:MAX_TAG])
    newline = head.find(b"\n")
    parts = head[len(MAGIC) : newline].split(b" ") if newline > 0 else []
    if not head.startswith(MAGIC) or len(parts) != 2 or not parts[0].isdigit() or not parts[1]:
        raise FormatError(
            f"{path}: the stored skeleton is not one Theta wrote (it does not start with"
            f" {MAGIC.decode().strip()!r}, a version and a kind); the object is damaged"
        )
    return int(parts[0]), parts[1].decode("ascii", "replace"), newline + 1


def kind_of(data: bytes | memoryview) -> str | None:
    """The kind a skeleton was written for, or None when `data` is not a skeleton."""
    try:
        return _tag(data, "")[1]
    except FormatError:
        return None


@contextmanager
def reading_extra(path: str) -> Iterator[None]:
    """Turn a KeyError, TypeError or ValueError raised while reading a format's `extra` fields
    into a `FormatError` saying that the stored skeleton of `path` is damaged.

    Keep the block to the reading of those fields, so that no other mistake is disguised.
    """
    try:
        yield
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{path}: the stored skeleton's index is damaged: {type(exc).__name__} {exc}") from None


def _buffer(source: Source) -> memoryview | None:
    try:
        view = memoryview(source)  # type: ignore[arg-type]
    except TypeError:
        return None
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _file_size(file: BinaryIO) -> int:
    position = file.tell()
    size = file.seek(0, 2)
    file.seek(position)
    return size


def _read_at(file: BinaryIO, offset: int, length: int, path: str, what: str) -> bytes:
    file.seek(offset)
    data = file.read(length)
    if len(data) != length:
        raise FormatError(f"{path}: file is truncated inside {what} (offset {offset}, {length} bytes)")
    return data


def cut(
    source: Source,
    regions: Iterable[Region],
    *,
    kind: str,
    path: str,
    extra: Mapping[str, Any] | None = None,
    overwrite: Iterable[Edit] = (),
) -> Skeleton:
    """The skeleton of `source` (a seekable binary file or a buffer) without `regions`.

    The regions are checked (`check_regions`) against the source's size. `overwrite` replaces
    kept bytes with as many others, for bytes that a writer recomputes from the tensors (a
    checksum): blanking them keeps the skeleton the same when only values change.
    """
    view = _buffer(source)
    size = len(view) if view is not None else _file_size(source)  # type: ignore[arg-type]
    ordered = check_regions(regions, size, path)
    gaps = [*zip([0, *(r.end for r in ordered)], [*(r.offset for r in ordered), size], strict=True)]
    if view is not None:
        body = bytearray(b"".join([view[start:end] for start, end in gaps]))
        view.release()
    else:
        body = bytearray()
        for start, end in gaps:
            body += _read_at(source, start, end - start, path, "the bytes between parameters")  # type: ignore[arg-type]
    skeleton = Skeleton(kind=kind, size=size, regions=ordered, body=b"", extra=dict(extra or {}), path=path)
    for edit in overwrite:
        if len(edit.data) != edit.end - edit.start:
            raise ValueError(f"an overwrite keeps the length: {edit.end - edit.start} bytes, given {len(edit.data)}")
        low = skeleton.to_stripped(edit.start)
        if skeleton.to_stripped(edit.end) - low != len(edit.data):
            raise FormatError(f"{path}: bytes {edit.start} to {edit.end} to overwrite overlap a parameter")
        body[low : low + len(edit.data)] = edit.data
    return Skeleton(kind=kind, size=size, regions=ordered, body=bytes(body), extra=skeleton.extra, path=path)


def read_tensors(
    source: Source,
    regions: Iterable[Region],
    *,
    path: str,
    decode: Decode | None = None,
    close: bool = False,
) -> Iterator[tuple[str, Tensor]]:
    """Each region's tensor, in the given order, read from `source` one at a time.

    From a buffer the tensors are views of it (nothing is copied); from a file each is read
    when the iterator reaches it. `decode(region, raw)` turns the file's bytes into the
    tensor's little-endian bytes (required for encoded regions). `close=True` closes `source`
    when the iteration ends.
    """
    regions = tuple(regions)
    if decode is None and any(r.encoded for r in regions):
        raise ValueError("encoded regions need a decode function")
    return _tensors(source, regions, path, decode, close)


def _tensors(
    source: Source, regions: tuple[Region, ...], path: str, decode: Decode | None, close: bool
) -> Iterator[tuple[str, Tensor]]:
    view = _buffer(source)
    try:
        for r in regions:
            if view is not None:
                if r.end > len(view):
                    raise FormatError(f"{path}: file is truncated inside parameter {r.name!r}")
                data: Any = view[r.offset : r.end]
            else:
                data = _read_at(source, r.offset, r.length, path, f"parameter {r.name!r}")  # type: ignore[arg-type]
            if decode is not None:
                data = decode(r, memoryview(data))
            if len(data) != r.nbytes:
                raise FormatError(
                    f"{path}: parameter {r.name!r}: {len(data)} bytes read where {r.dtype} {list(r.shape)}"
                    f" needs {r.nbytes}"
                )
            yield r.name, Tensor(dtype=r.dtype, shape=r.shape, data=data)
    finally:
        if close:
            source.close()  # type: ignore[union-attr]


def raw(region: Region, tensor: Tensor, path: str = "checkpoint") -> memoryview:
    """The tensor's bytes, as they go into `region` unchanged; another dtype or shape is a `FormatError`."""
    if tensor.dtype != region.dtype or tensor.shape != region.shape:
        raise FormatError(
            f"{path}: parameter {region.name!r} is {tensor.dtype} {list(tensor.shape)},"
            f" the file needs {region.dtype} {list(region.shape)}"
        )
    return tensor.data


def splice(
    skeleton: Skeleton,
    layout: Layout,
    sink: BinaryIO,
    *,
    encode: Encode | None = None,
    edits: Iterable[Edit] = (),
    patch: Patch | None = None,
) -> None:
    """Write the original file to `sink`: the body with each region's tensor put back.

    Tensors are loaded with `layout.load` one at a time, in file order, and written as
    `encode(region, tensor)` gives them (by default `raw`: the tensor must keep the region's
    dtype and shape). `edits` replace spans of the kept bytes; `patch(region, data)` is called
    with the bytes about to be written for each region and returns more edits, which must lie
    in the part of the file not written yet (from the end of the previous region on). Errors
    name `layout.path`.
    """
    path = layout.path
    if encode is None and any(r.encoded for r in skeleton.regions):
        raise ValueError("encoded regions need an encode function")
    body = memoryview(skeleton.body)
    pending: list[tuple[int, int, int, bytes]] = []
    counter = itertools.count()
    position = 0

    def push(edit: Edit) -> None:
        if not position <= edit.start <= edit.end <= skeleton.size:
            raise FormatError(
                f"{path}: an edit of bytes {edit.start} to {edit.end} lies outside the bytes still to write"
                f" ({position} to {skeleton.size}); the stored skeleton is damaged"
            )
        heapq.heappush(pending, (edit.start, edit.end, next(counter), edit.data))

    def flush(limit: int, removed: int) -> None:
        """Write the kept bytes from `position` up to `limit` (between two regions), with the edits there."""
        nonlocal position
        while pending and (pending[0][0] < limit or pending[0][0] == pending[0][1] == limit):
            start, end, _, data = heapq.heappop(pending)
            if start < position or end > limit:
                raise FormatError(
                    f"{path}: an edit of bytes {start} to {end} overlaps another edit or a parameter;"
                    " the stored skeleton is damaged"
                )
            sink.write(body[position - removed : start - removed])
            sink.write(data)
            position = end
        sink.write(body[position - removed : limit - removed])
        position = limit

    for edit in edits:
        push(edit)
    for region, removed in zip(skeleton.regions, skeleton._removed, strict=False):
        tensor = layout.load(region.name)
        data = raw(region, tensor, path) if encode is None else encode(region, tensor)
        if patch is not None:
            for edit in patch(region, data):
                push(edit)
        flush(region.offset, removed)
        if pending and pending[0][0] < region.end:
            raise FormatError(f"{path}: an edit at byte {pending[0][0]} lies inside parameter {region.name!r}")
        sink.write(data)
        position = region.end
        del tensor, data
    flush(skeleton.size, skeleton._removed[-1])
