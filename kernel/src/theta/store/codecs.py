"""How an array's bytes are kept in its object: `raw`, `zstd`, or `zstd-grouped` (dense tensors).

- `zstd`: one zstd frame of the raw bytes, for an update's arrays (indices, factors, XOR
  residuals) when that saves at least MIN_SAVING of their size.
- `zstd-grouped`: a whole tensor, cut into blocks of BLOCK_BYTES raw bytes; each block is
  byte-grouped (the highest byte of every element, then the next ones, down to the lowest)
  and each of these byte planes compressed as one zstd frame, behind a small index of the
  frames' sizes (specs/objects/v1). Sign and exponent bytes of float weights sit apart from their mantissa
  bytes, which is what makes weights compress. Kept only when it saves DENSE_MIN_SAVING: a
  tensor that does not compress stays `raw`, its object's oid the tensor's own sha256.

Both are deterministic (fixed level, fixed block size, no checksum or dictionary), so equal
tensors give equal objects.
"""

from __future__ import annotations

import itertools
import struct
import threading
from collections.abc import Iterator

import numpy as np

from theta.bits import byte_planes, join_planes, little_uint
from theta.errors import ThetaError

MIN_SAVING = 0.10
ZSTD_LEVEL = 1  # level 3 compresses weights and residuals no better and is 1.5-2x slower
# zstd cannot expand its input more than this (an RLE block is 4 bytes for 128 KiB): a claim
# beyond it cannot be true, and is refused before anything is allocated for it.
MAX_RATIO = 1 << 15
RATIO_SLACK = 1 << 17


def check_claim(codec: str, stored: int, claimed: int) -> None:
    """Refuse an object of `stored` bytes that claims to decompress to more than zstd can produce."""
    if claimed > stored * MAX_RATIO + RATIO_SLACK:
        raise ThetaError(
            f"a {codec} object of {stored} bytes claims to hold {claimed} bytes, more than {codec} can"
            " produce from it; the metadata file is damaged or hostile"
        )


GROUPED = "zstd-grouped"
GROUPED_MAGIC = b"TZG1"
BLOCK_BYTES = 1 << 22  # a multiple of every dtype's itemsize
MAX_BLOCK_BYTES = 1 << 26  # a stored index may not ask for larger blocks than this
DENSE_MIN_SAVING = 0.05
SAMPLE_BLOCKS = 2  # judged on its first blocks: a tensor that does not compress costs little time
# `dense_estimate` compresses two slices of this many bytes in all: on weights it comes within
# 0.1% of the stored size, and a changed tensor's budget needs no more.
ESTIMATE_SAMPLE_BYTES = 1 << 19
_HEADER = struct.Struct("<4sII")  # magic, block bytes, block count; then one u32 size per block

_local = threading.local()


def _compressor(grouped: bool = False):  # -> zstandard.ZstdCompressor; one per thread (they are not thread-safe)
    key = "grouped" if grouped else "plain"
    found = getattr(_local, key, None)
    if found is None:
        import zstandard

        if grouped:
            # Byte planes of weights have a few bits of entropy per byte and few long repeats:
            # long minimum matches and a small hash table compress them better, twice as fast.
            params = zstandard.ZstdCompressionParameters(compression_level=ZSTD_LEVEL, min_match=7, hash_log=6)
            found = zstandard.ZstdCompressor(compression_params=params)
        else:
            found = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        setattr(_local, key, found)
    return found


def _decompressor():  # -> zstandard.ZstdDecompressor
    found = getattr(_local, "decompressor", None)
    if found is None:
        import zstandard

        found = _local.decompressor = zstandard.ZstdDecompressor()
    return found


def encode(data: bytes | memoryview) -> tuple[str, bytes | memoryview]:
    """The codec to use for `data` and the bytes to store."""
    if len(data) < 64:
        return "raw", data
    packed = _compressor().compress(data)
    if len(packed) <= len(data) * (1 - MIN_SAVING):
        return "zstd", packed
    return "raw", data


def _blocks(size: int, block: int) -> Iterator[tuple[int, int]]:
    for start in range(0, size, block):
        yield start, min(start + block, size)


def encode_dense(data: bytes | memoryview, itemsize: int) -> tuple[str, bytes | memoryview]:
    """A whole tensor's codec and stored bytes: `zstd-grouped` when it saves DENSE_MIN_SAVING, else `raw`.

    A tensor that saves too little over its first SAMPLE_BLOCKS blocks is not compressed further.
    """
    view = memoryview(data).cast("B") if not isinstance(data, memoryview) or data.format != "B" else data
    if len(view) < 64 or len(view) % itemsize:
        return "raw", data
    spans = list(_blocks(len(view), BLOCK_BYTES))
    header = _HEADER.size + 4 * len(spans) * itemsize
    limit = header + int(len(view) * (1 - DENSE_MIN_SAVING))
    out = np.empty(limit, dtype=np.uint8)
    sizes = []
    at = header
    compressor = _compressor(grouped=True)
    for i, (start, end) in enumerate(spans):
        for plane in byte_planes(view[start:end], itemsize):
            frame = compressor.compress(plane)
            if at + len(frame) > limit:
                return "raw", data  # it cannot save enough any more
            out[at : at + len(frame)] = np.frombuffer(frame, dtype=np.uint8)
            at += len(frame)
            sizes.append(len(frame))
        if i + 1 == SAMPLE_BLOCKS and at - header > end * (1 - DENSE_MIN_SAVING):
            return "raw", data
    stored = memoryview(out)[:at]
    _HEADER.pack_into(stored, 0, GROUPED_MAGIC, BLOCK_BYTES, len(spans))
    struct.pack_into(f"<{len(sizes)}I", stored, _HEADER.size, *sizes)
    return GROUPED, stored


def _decode_grouped(data: bytes | memoryview, expected_size: int, itemsize: int) -> memoryview:
    view = memoryview(data).cast("B")
    if len(view) < _HEADER.size:
        raise ThetaError(f"a {GROUPED} object is cut short ({len(view)} bytes)")
    magic, block, count = _HEADER.unpack_from(view, 0)
    if magic != GROUPED_MAGIC:
        raise ThetaError(f"a {GROUPED} object does not start with {GROUPED_MAGIC!r}")
    if not 0 < block <= MAX_BLOCK_BYTES or block % itemsize or count != -(-expected_size // block):
        raise ThetaError(
            f"a {GROUPED} object declares {count} blocks of {block} bytes; {expected_size} bytes of"
            f" {itemsize}-byte elements need blocks of whole elements, at most {MAX_BLOCK_BYTES} bytes"
        )
    header = _HEADER.size + 4 * count * itemsize
    if len(view) < header:
        raise ThetaError(f"a {GROUPED} object's index is cut short")
    sizes = struct.unpack_from(f"<{count * itemsize}I", view, _HEADER.size)
    if header + sum(sizes) != len(view):
        raise ThetaError(f"a {GROUPED} object holds {len(view) - header} bytes of frames, its index says {sum(sizes)}")
    target = np.empty(expected_size, dtype=np.uint8)  # numpy asks for huge pages: fewer page faults
    decompressor = _decompressor()
    frames = zip(itertools.accumulate(sizes, initial=header), sizes, strict=False)  # (offset, size) of each frame

    def planes(count: int) -> Iterator[bytes]:
        for at, size in itertools.islice(frames, itemsize):
            try:
                plane = decompressor.decompress(view[at : at + size], max_output_size=count)
            except Exception as exc:  # zstandard.ZstdError: a damaged frame
                raise ThetaError(f"a {GROUPED} object has a damaged frame at byte {at}: {exc}") from None
            if len(plane) != count:
                raise ThetaError(f"a {GROUPED} frame decompressed to {len(plane)} bytes, expected {count}")
            yield plane

    element = little_uint(itemsize)
    for start, end in _blocks(expected_size, block):
        join_planes(planes((end - start) // itemsize), target[start:end].view(element))
    return memoryview(target)


def decode(codec: str, data: bytes, expected_size: int, itemsize: int = 1) -> bytes | memoryview:
    if codec == "raw":
        return data
    if codec == "zstd":
        check_claim(codec, len(data), expected_size)
        import zstandard

        try:
            declared = zstandard.frame_content_size(data)
            if declared not in (-1, expected_size):
                raise ThetaError(f"a zstd object holds {declared} bytes, its metadata says {expected_size}")
            out = zstandard.ZstdDecompressor().decompress(data, max_output_size=expected_size)
        except zstandard.ZstdError as exc:
            raise ThetaError(f"a zstd object is damaged: {exc}") from None
        if len(out) != expected_size:
            raise ThetaError(f"a zstd object decompressed to {len(out)} bytes, expected {expected_size}")
        return out
    if codec == GROUPED:
        check_claim(codec, len(data), expected_size)
        return _decode_grouped(data, expected_size, itemsize)
    raise ThetaError(f"unknown codec {codec!r}; upgrade theta-kernel")


def dense_estimate(data: bytes | memoryview, itemsize: int, sample_bytes: int = ESTIMATE_SAMPLE_BYTES) -> int:
    """About how many bytes `encode_dense` would store, judged on two evenly spaced slices of the tensor."""
    view = memoryview(data).cast("B") if not isinstance(data, memoryview) or data.format != "B" else data
    size = len(view)
    if size < 64 or size % itemsize:
        return size
    piece = max(itemsize, sample_bytes // 2 // itemsize * itemsize)
    if 2 * piece >= size:
        starts = [0]
        piece = size
    else:
        starts = [0, (size - piece) // 2 // itemsize * itemsize]
    compressor = _compressor(grouped=True)
    planes = (plane for s in starts for plane in byte_planes(view[s : s + piece], itemsize))
    packed = sum(len(compressor.compress(plane)) for plane in planes)
    estimate = int(packed * size / (piece * len(starts)))
    return estimate if estimate <= size * (1 - DENSE_MIN_SAVING) else size
