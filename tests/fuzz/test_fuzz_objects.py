"""Objects: what the store gives back is what was put, or an error; codecs decode exactly or refuse."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest
from fuzz.budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from theta.errors import ObjectCorrupt, ThetaError
from theta.store import codecs
from theta.store.objects import ObjectStore

CODECS = sorted({"raw", "zstd", getattr(codecs, "GROUPED", "zstd")})


def fresh_store() -> ObjectStore:
    root = Path(tempfile.mkdtemp(prefix="theta-fuzz-"))
    return ObjectStore(root / "lfs", root / "theta" / "objects")


@settings(max_examples=examples(60))
@given(st.binary(max_size=4096), st.integers(0, 4095), st.integers(1, 255))
def test_a_damaged_object_is_never_returned(data: bytes, at: int, flip: int) -> None:
    store = fresh_store()
    oid, size = store.put(data)
    assert store.read(oid, size) == data and store.verify(oid, size)
    if not data:
        return
    path = store.path(oid)
    damaged = bytearray(path.read_bytes())
    damaged[at % len(damaged)] ^= flip
    path.write_bytes(bytes(damaged))
    fresh = ObjectStore(store.lfs_dir, store.keep_dir)  # no memory of the earlier check
    assert not fresh.verify(oid, size)
    with pytest.raises(ObjectCorrupt):
        fresh.read(oid, size)
    fresh.put(data)  # storing the good bytes again repairs it, under both names
    assert ObjectStore(store.lfs_dir, store.keep_dir).read(oid, size) == data
    assert hashlib.sha256(fresh._kept(oid).read_bytes()).hexdigest() == oid  # type: ignore[union-attr]


@settings(max_examples=examples(80))
@given(st.binary(min_size=64, max_size=8192), st.sampled_from([1, 2, 4, 8]))
def test_codecs_round_trip(data: bytes, itemsize: int) -> None:
    data = data[: len(data) // itemsize * itemsize] or bytes(itemsize)
    codec, stored = codecs.encode(data)
    assert bytes(codecs.decode(codec, bytes(stored), len(data))) == data
    if hasattr(codecs, "encode_dense"):
        codec, stored = codecs.encode_dense(data, itemsize)
        assert bytes(codecs.decode(codec, bytes(stored), len(data), itemsize)) == data


@settings(max_examples=examples(150))
@given(st.sampled_from(CODECS), st.binary(max_size=512), st.integers(0, 1 << 50), st.sampled_from([1, 2, 4]))
def test_decoding_any_bytes_is_exact_or_refused(codec: str, data: bytes, claimed: int, itemsize: int) -> None:
    claimed -= claimed % itemsize
    try:
        out = codecs.decode(codec, data, claimed, itemsize) if codec != "raw" else None
    except ThetaError:
        return
    assert out is None or len(out) == claimed


@settings(max_examples=examples(60))
@given(st.binary(min_size=1, max_size=2048), st.integers(1, 1 << 40))
def test_damaged_zstd_frames_are_refused(data: bytes, claimed: int) -> None:
    _, packed = codecs.encode(data * 64)
    damaged = bytearray(packed)
    damaged[len(damaged) // 2] ^= 0x5A
    try:
        out = codecs.decode("zstd", bytes(damaged), claimed)
    except ThetaError:
        return
    assert len(out) == claimed
