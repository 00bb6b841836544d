"""How an array's bytes are kept in its object: `raw`, or `zstd` when that is smaller."""

from __future__ import annotations

from theta.errors import ThetaError

# An update's arrays (indices, factors, XOR residuals) are compressed when zstd saves at
# least this share of their size; dense tensors are stored raw, so that their object's oid
# is the tensor's own sha256 and adding a checkpoint costs no compression time.
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


def encode(data: bytes | memoryview) -> tuple[str, bytes | memoryview]:
    """The codec to use for `data` and the bytes to store."""
    if len(data) < 64:
        return "raw", data
    import zstandard

    packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    if len(packed) <= len(data) * (1 - MIN_SAVING):
        return "zstd", packed
    return "raw", data


def decode(codec: str, data: bytes, expected_size: int) -> bytes:
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
    raise ThetaError(f"unknown codec {codec!r}; upgrade theta-kernel")
