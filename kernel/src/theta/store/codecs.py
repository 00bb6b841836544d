"""How an array's bytes are kept in its object: `raw`, or `zstd` when that is smaller."""

from __future__ import annotations

from theta.errors import ThetaError

# An update's arrays (indices, factors, XOR residuals) are compressed when zstd saves at
# least this share of their size; dense tensors are stored raw, so that their object's oid
# is the tensor's own sha256 and adding a checkpoint costs no compression time.
MIN_SAVING = 0.10
ZSTD_LEVEL = 1  # level 3 compresses weights and residuals no better and is 1.5-2x slower


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
        import zstandard

        out = zstandard.ZstdDecompressor().decompress(data, max_output_size=expected_size)
        if len(out) != expected_size:
            raise ThetaError(f"a zstd object decompressed to {len(out)} bytes, expected {expected_size}")
        return out
    raise ThetaError(f"unknown codec {codec!r}; upgrade theta-kernel")
