"""theta.splice: cutting a file into a skeleton and tensors, mapping offsets, and splicing the tensors back."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theta.errors import FormatError
from theta.formats import Layout, TensorInfo
from theta.splice import (
    Edit,
    Region,
    Skeleton,
    check_regions,
    cut,
    kind_of,
    nbytes,
    read_tensors,
    reading_extra,
    splice,
)
from theta.tensors import Tensor

# A 64-byte file with two tensors: float32[2] at 8 and uint8[3] at 40.
FILE = bytes(range(64))
A = Region(name="a", dtype="float32", shape=(2,), offset=8, length=8)
B = Region(name="b", dtype="uint8", shape=(3,), offset=40, length=3)


def layout_of(skeleton: Skeleton, tensors: dict[str, Tensor], path: str = "model.bin", **kw: Any) -> Layout:
    return Layout(
        skeleton=skeleton.encode(),
        parameters=kw.pop("parameters", {n: TensorInfo(dtype=t.dtype, shape=t.shape) for n, t in tensors.items()}),
        load=kw.pop("load", tensors.__getitem__),
        path=path,
    )


def tensors_of(source: Any, skeleton: Skeleton, **kw: Any) -> dict[str, Tensor]:
    return {n: Tensor(dtype=t.dtype, shape=t.shape, data=bytes(t.data)) for n, t in
            read_tensors(source, skeleton.regions, path="model.bin", **kw)}  # fmt: skip


def spliced(skeleton: Skeleton, tensors: dict[str, Tensor], **kw: Any) -> bytes:
    sink = io.BytesIO()
    layout_kw = {k: kw.pop(k) for k in ("parameters", "load") if k in kw}
    splice(skeleton, layout_of(skeleton, tensors, **layout_kw), sink, **kw)
    return sink.getvalue()


def round_trip(source: Any, regions: list[Region], **kw: Any) -> tuple[Skeleton, dict[str, Tensor]]:
    skeleton = cut(source, regions, kind="test", path="model.bin", **kw)
    decoded = Skeleton.decode(skeleton.encode(), kind="test", path="model.bin")
    assert decoded == skeleton
    return decoded, tensors_of(source, decoded)


# --- round trip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("as_file", [False, True], ids=["buffer", "file"])
def test_round_trip_gives_the_file_back(as_file: bool) -> None:
    source = io.BytesIO(FILE) if as_file else FILE
    skeleton, tensors = round_trip(source, [B, A])  # any order in, file order out
    assert [r.name for r in skeleton.regions] == ["a", "b"]
    assert skeleton.body == FILE[:8] + FILE[16:40] + FILE[43:]
    assert skeleton.size == len(FILE)
    assert bytes(tensors["a"].data) == FILE[8:16] and tensors["b"].numpy().tolist() == [40, 41, 42]
    assert spliced(skeleton, tensors) == FILE


def test_tensors_from_a_buffer_are_views_of_it(tmp_path: Path) -> None:
    buffer = bytearray(FILE)
    (name, tensor), _ = read_tensors(buffer, [A, B], path="m")
    buffer[8] = 0xFF
    assert name == "a" and tensor.data[0] == 0xFF


def test_a_file_is_closed_when_its_tensors_are_read(tmp_path: Path) -> None:
    (tmp_path / "m").write_bytes(FILE)
    handle = (tmp_path / "m").open("rb")
    assert len(list(read_tensors(handle, [A, B], path="m", close=True))) == 2
    assert handle.closed


def test_empty_regions_a_file_without_regions_and_an_empty_file() -> None:
    empty = Region(name="e", dtype="float32", shape=(0, 3), offset=20, length=0)
    skeleton, tensors = round_trip(FILE, [A, empty, B])
    assert tensors["e"].shape == (0, 3) and spliced(skeleton, tensors) == FILE
    skeleton, tensors = round_trip(FILE, [])
    assert skeleton.body == FILE and tensors == {} and spliced(skeleton, {}) == FILE
    skeleton, _ = round_trip(b"", [])
    assert skeleton.size == 0 and spliced(skeleton, {}) == b""


def test_extra_fields_are_kept() -> None:
    region = Region(name="a", dtype="float32", shape=(2,), offset=8, length=8, extra={"key": "0", "crc_at": [1, 2]})
    skeleton = cut(FILE, [region], kind="test", path="m", extra={"pickle": [1, 2, 0]})
    decoded = Skeleton.decode(skeleton.encode(), kind=("other", "test"), path="m")
    assert decoded.extra == {"pickle": [1, 2, 0]} and decoded.regions[0].extra == {"key": "0", "crc_at": [1, 2]}


def test_the_skeleton_stays_the_same_when_only_values_change() -> None:
    changed = bytearray(FILE)
    changed[8:16] = np.array([3.5, -1], np.float32).tobytes()
    assert cut(FILE, [A, B], kind="t", path="m").encode() == cut(bytes(changed), [A, B], kind="t", path="m").encode()


def test_the_tag_names_the_kind() -> None:
    encoded = cut(FILE, [A], kind="keras-h5", path="m").encode()
    assert encoded.startswith(b"theta-skeleton 1 keras-h5\n")
    assert kind_of(encoded) == "keras-h5" and kind_of(b"PK\x03\x04") is None and kind_of(b"") is None


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=200),
    cuts=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 12)), max_size=8),
)
def test_any_disjoint_regions_round_trip(data: bytes, cuts: list[tuple[int, int]]) -> None:
    regions, end = [], 0
    for i, (gap, length) in enumerate(cuts):
        start = end + gap % 16
        if start + length > len(data):
            break
        regions.append(Region(name=f"p{i}", dtype="uint8", shape=(length,), offset=start, length=length))
        end = start + length
    skeleton, tensors = round_trip(data, regions)
    assert spliced(skeleton, tensors) == data
    assert len(skeleton.body) == len(data) - sum(r.length for r in regions)
    for r in regions:
        assert skeleton.to_stripped(r.offset) == skeleton.to_stripped(r.end)
    kept = [x for x in range(len(data)) if not any(r.offset <= x < r.end for r in regions)]
    assert [skeleton.to_original(skeleton.to_stripped(x)) for x in kept] == kept
    for x in range(len(skeleton.body)):
        assert skeleton.body[x] == data[skeleton.to_original(x)]


# --- offset mapping -----------------------------------------------------------------------------


def test_offsets_map_between_the_file_and_the_body() -> None:
    skeleton = cut(FILE, [A, B], kind="t", path="m.bin")
    assert [skeleton.to_stripped(x) for x in (0, 7, 8, 16, 17, 40, 43, 64)] == [0, 7, 8, 8, 9, 32, 32, 53]
    assert [skeleton.to_original(x) for x in (0, 7, 8, 9, 31, 32, 52, 53)] == [0, 7, 16, 17, 39, 43, 63, 64]
    assert bytes(skeleton.kept(20, 24)) == FILE[20:24]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.to_stripped(9), r"m\.bin: offset 9 lies inside parameter 'a' \(8 to 16\)"),
        (lambda s: s.to_stripped(65), r"m\.bin: offset 65 lies outside the file"),
        (lambda s: s.to_stripped(-1), r"m\.bin: offset -1 lies outside"),
        (lambda s: s.to_original(54), r"m\.bin: body offset 54 lies outside the body"),
        (lambda s: s.kept(4, 20), r"m\.bin: bytes 4 to 20 are not all kept"),
    ],
)
def test_offsets_inside_a_region_or_outside_the_file_are_errors(call: Any, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        call(cut(FILE, [A, B], kind="t", path="m.bin"))


# --- edits, patches, encodings ------------------------------------------------------------------


def crc_patch(region: Region, data: Any) -> list[Edit]:
    """A toy format: the CRC-32 of each tensor is stored in 4 bytes at `extra["crc_at"]`."""
    return [
        Edit(start=region.extra["crc_at"], end=region.extra["crc_at"] + 4, data=zlib.crc32(data).to_bytes(4, "little"))
    ]


def test_overwritten_checksums_are_blanked_and_patched_back_before_and_after_their_tensor() -> None:
    a = Region(name="a", dtype="float32", shape=(2,), offset=8, length=8, extra={"crc_at": 2})  # before its bytes
    b = Region(name="b", dtype="uint8", shape=(3,), offset=40, length=3, extra={"crc_at": 50})  # after them
    data = bytearray(FILE)
    for r in (a, b):
        data[r.extra["crc_at"] : r.extra["crc_at"] + 4] = zlib.crc32(data[r.offset : r.end]).to_bytes(4, "little")
    blanks = [Edit(start=r.extra["crc_at"], end=r.extra["crc_at"] + 4, data=bytes(4)) for r in (a, b)]
    skeleton, tensors = round_trip(bytes(data), [a, b], overwrite=blanks)
    assert skeleton.body[2:6] == bytes(4) and bytes(skeleton.kept(50, 54)) == bytes(4)
    assert spliced(skeleton, tensors, patch=crc_patch) == data
    tensors["b"] = Tensor.from_numpy(np.array([7, 8, 9], np.uint8))
    out = spliced(skeleton, tensors, patch=crc_patch)
    assert out[40:43] == b"\x07\x08\x09" and out[50:54] == zlib.crc32(b"\x07\x08\x09").to_bytes(4, "little")


def test_edits_may_change_lengths_and_insert_before_a_region() -> None:
    skeleton, tensors = round_trip(FILE, [A, B])
    edits = [Edit(start=0, end=2, data=b"xyz"), Edit(start=8, end=8, data=b"<"), Edit(start=16, end=20)]
    expected = b"xyz" + FILE[2:8] + b"<" + FILE[8:16] + FILE[20:]
    assert spliced(skeleton, tensors, edits=edits) == expected


def test_encoded_regions_go_through_decode_and_encode() -> None:
    """A toy encoding: the file holds each byte of the tensor as two hex digits."""
    values = np.array([1.5, -2.0], np.float32).tobytes()
    data = b"head" + values.hex().encode() + b"tail"
    region = Region(name="h", dtype="float32", shape=(2,), offset=4, length=16, encoded=True)
    skeleton = cut(data, [region], kind="t", path="m")
    with pytest.raises(ValueError, match="decode"):
        read_tensors(data, skeleton.regions, path="m")
    tensors = tensors_of(data, skeleton, decode=lambda r, raw: bytes.fromhex(bytes(raw).decode()))
    assert bytes(tensors["h"].data) == values
    with pytest.raises(ValueError, match="encode"):
        spliced(skeleton, tensors)
    assert spliced(skeleton, tensors, encode=lambda r, t: bytes(t.data).hex().encode()) == data


def test_splice_streams_one_tensor_at_a_time_in_file_order() -> None:
    skeleton, tensors = round_trip(FILE, [A, B])
    sink = io.BytesIO()
    seen: list[tuple[str, int]] = []

    def load(name: str) -> Tensor:
        seen.append((name, sink.tell()))
        return tensors[name]

    splice(skeleton, layout_of(skeleton, tensors, load=load), sink)
    assert sink.getvalue() == FILE
    assert seen == [("a", 0), ("b", 16)]  # b is loaded after everything up to a's end was written


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regions", "message"),
    [
        (
            [A, Region(name="c", dtype="uint8", shape=(4,), offset=14, length=4)],
            r"'c' \(bytes 14 to 18\) overlaps .*'a'",
        ),
        ([Region(name="c", dtype="uint8", shape=(4,), offset=62, length=4)], r"file is truncated: parameter 'c'"),
        ([Region(name="c", dtype="float32", shape=(2,), offset=0, length=4)], r"'c': 4 bytes stored for float32 \[2\]"),
        ([Region(name="c", dtype="float7", shape=(2,), offset=0, length=2)], r"'c': unknown dtype 'float7'"),
        ([Region(name="c", dtype="uint8", shape=(2,), offset=-2, length=2)], r"'c': negative offset"),
        ([A, Region(name="a", dtype="uint8", shape=(1,), offset=30, length=1)], r"'a' appears twice"),
    ],
    ids=["overlap", "out-of-range", "length", "dtype", "negative", "duplicate"],
)
def test_inconsistent_regions_are_format_errors_naming_the_file(regions: list[Region], message: str) -> None:
    with pytest.raises(FormatError, match=rf"^model\.bin: .*{message}"):
        cut(FILE, regions, kind="t", path="model.bin")
    with pytest.raises(FormatError, match=message):
        check_regions(regions, len(FILE), "model.bin")


def test_a_truncated_file_is_an_error_while_reading() -> None:
    with pytest.raises(FormatError, match=r"m: file is truncated inside parameter 'b'"):
        list(read_tensors(io.BytesIO(FILE[:41]), [A, B], path="m"))
    with pytest.raises(FormatError, match=r"m: file is truncated inside parameter 'b'"):
        list(read_tensors(FILE[:41], [A, B], path="m"))


def index_with(change: Any) -> bytes:
    """The encoded skeleton of FILE cut at A and B, its JSON index passed through `change`."""
    encoded = cut(FILE, [A, B], kind="t", path="m").encode()
    tag = encoded[: encoded.index(b"\n") + 1]
    length = int.from_bytes(encoded[len(tag) : len(tag) + 8], "little")
    index = json.loads(encoded[len(tag) + 8 : len(tag) + 8 + length])
    body = encoded[len(tag) + 8 + length :]
    raw = change(index)
    raw = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    return tag + len(raw).to_bytes(8, "little") + raw + body


def _set(index: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    target: Any = index
    *path, last = where.split(".")
    for key in path:
        target = target[int(key)] if key.isdigit() else target[key]
    target[last] = value
    return index


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"junk", r"not one Theta wrote"),
        (b"theta-skeleton 1 t", r"not one Theta wrote"),
        (b"theta-skeleton 1 other\n", r"written for 'other', not 't'"),
        (b"theta-skeleton 2 t\n", r"version 2; this theta-kernel reads version 1: upgrade theta-kernel"),
        (b"theta-skeleton 1 t\n\x01", r"index is damaged: it is cut short"),
        (b"theta-skeleton 1 t\n" + (99).to_bytes(8, "little") + b"{}", r"index is damaged: it needs 99 bytes"),
        (index_with(lambda i: b"{not json"), r"index is damaged"),
        (index_with(lambda i: [1, 2]), r"index is damaged: it is not a JSON object"),
        (index_with(lambda i: _set(i, "size", "64")), r"index is damaged: it needs an integer size"),
        (index_with(lambda i: _set(i, "regions.0.offset", True)), r"region 'a': offset is missing or not an integer"),
        (index_with(lambda i: _set(i, "regions.0.shape", [2, -1])), r"region 'a': shape \[2, -1\] is not"),
        (index_with(lambda i: _set(i, "regions.1.name", 3)), r"region 3: name is missing"),
        (index_with(lambda i: _set(i, "regions.0.length", 4)), r"'a': 4 bytes stored for float32 \[2\]"),
        (index_with(lambda i: _set(i, "regions.1.offset", 12)), r"overlaps parameter 'a'.*skeleton is damaged"),
        (index_with(lambda i: _set(i, "regions.1.offset", 62)), r"file is truncated: parameter 'b'"),
        (index_with(lambda i: _set(i, "regions", i["regions"][::-1])), r"regions are not in file order"),
        (index_with(lambda i: _set(i, "size", 65)), r"the body holds 53 bytes, the index says 54"),
    ],
    ids=[
        "magic", "no-newline", "kind", "version", "short", "length", "json", "not-object", "size", "bool-offset",
        "shape", "name", "lengths", "overlap", "out-of-range", "order", "body",
    ],
)  # fmt: skip
def test_a_damaged_skeleton_is_a_format_error_naming_the_file(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=rf"^model\.bin: .*{message}"):
        Skeleton.decode(data, kind="t", path="model.bin")


def test_a_tensor_that_does_not_fit_its_region_names_the_file_and_parameter() -> None:
    skeleton, tensors = round_trip(FILE, [A, B])
    tensors["a"] = Tensor.from_numpy(np.zeros(3, np.float32))
    with pytest.raises(FormatError, match=r"^model\.bin: parameter 'a' is float32 \[3\], the file needs float32 \[2\]"):
        spliced(skeleton, tensors)


@pytest.mark.parametrize(
    ("edits", "patch", "message"),
    [
        ([Edit(start=10, end=12, data=b"xx")], None, r"an edit at byte 10 lies inside parameter 'a'"),
        ([Edit(start=4, end=10)], None, r"an edit of bytes 4 to 10 overlaps another edit or a parameter"),
        ([Edit(start=1, end=5), Edit(start=3, end=6)], None, r"an edit of bytes 3 to 6 overlaps another edit"),
        ([Edit(start=60, end=70)], None, r"an edit of bytes 60 to 70 lies outside the bytes still to write"),
        (
            (),
            lambda r, d: [Edit(start=2, end=3)] if r.name == "b" else [],
            r"an edit of bytes 2 to 3 lies outside the bytes still",
        ),
    ],
    ids=["inside", "straddles", "overlapping", "past-the-end", "patch-behind"],
)
def test_inconsistent_edits_are_format_errors(edits: list[Edit], patch: Any, message: str) -> None:
    skeleton, tensors = round_trip(FILE, [A, B])
    with pytest.raises(FormatError, match=rf"^model\.bin: {message}"):
        spliced(skeleton, tensors, edits=edits, patch=patch)


def test_overwrites_keep_their_length_and_stay_outside_regions() -> None:
    with pytest.raises(ValueError, match="keeps the length"):
        cut(FILE, [A], kind="t", path="m", overwrite=[Edit(start=0, end=4, data=b"x")])
    with pytest.raises(FormatError, match=r"m: offset 10 lies inside parameter 'a'"):
        cut(FILE, [A], kind="t", path="m", overwrite=[Edit(start=6, end=10, data=b"xxxx")])


def test_reading_extra_turns_lookup_errors_into_format_errors() -> None:
    skeleton = Skeleton.decode(cut(FILE, [A], kind="t", path="m").encode(), kind="t", path="m.pt")
    damaged = r"^m\.pt: the stored skeleton's index is damaged: KeyError 'pickle'"
    with pytest.raises(FormatError, match=damaged), reading_extra(skeleton.path):
        skeleton.extra["pickle"]


def test_matches_and_differences() -> None:
    skeleton = cut(FILE, [A, B], kind="t", path="m")
    same = {"a": TensorInfo(dtype="float32", shape=(2,)), "b": TensorInfo(dtype="uint8", shape=(3,))}
    assert skeleton.matches(same) and skeleton.differences(same) == []
    other = {"a": TensorInfo(dtype="float16", shape=(2,)), "c": TensorInfo(dtype="uint8", shape=(1,))}
    assert not skeleton.matches(other) and skeleton.differences(other) == ["a", "b", "c"]
    assert nbytes("bfloat16", (3, 4)) == 24
