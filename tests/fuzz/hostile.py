"""Hostile inputs, as a user or a remote could send them: each is small and claims much, or breaks a rule.

`python tests/fuzz/hostile.py` writes them to tests/fuzz/corpus/ (the seed corpus of the fuzz
tests); the tests read them from there and check each is refused with one line.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
ZERO_OID = "0" * 64


def safetensors_claiming(nbytes: int = 4 << 30) -> bytes:
    """A 104-byte safetensors file whose header claims a tensor of `nbytes` bytes."""
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [nbytes // 4], "data_offsets": [0, nbytes]}}, separators=(",", ":")
    ).encode()
    header += b" " * (-len(header) % 8)
    body = struct.pack("<Q", len(header)) + header
    return body + b"\0" * (104 - len(body))


def safetensors_huge_header() -> bytes:
    """A header length of 100 MiB, with a few bytes of it present."""
    return struct.pack("<Q", 100 * 1024 * 1024) + b'{"w": {"dtype": "F32"'


def safetensors_deep_header(depth: int = 100_000) -> bytes:
    header = b"[" * depth + b"]" * depth
    header = b'{"a":' + header + b"}"
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header


def _pickle_string(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def build_on_placeholder_pickle() -> bytes:
    """A `data.pkl` whose BUILD opcode sets the state of a tensor placeholder (torch never writes one)."""
    storage = (
        b"(" + _pickle_string("storage") + b"ctorch\nFloatStorage\n" + _pickle_string("0")
        + _pickle_string("cpu") + b"K\x04tQ"
    )  # fmt: skip
    tensor = (
        b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + b"K\x00K\x04\x85K\x01\x85\x89"
        + b"ccollections\nOrderedDict\n)Rt" + b"R"
    )  # fmt: skip
    state = b"N}" + _pickle_string("storage") + b"K\x05s\x86b"
    return b"\x80\x02}" + _pickle_string("w") + tensor + state + b"s."


def torch_archive(pickle_data: bytes, deflate_pickle: bool = False, storages: dict[str, bytes] | None = None) -> bytes:
    """A ZIP archive laid out like torch.save's: archive/data.pkl, archive/byteorder, archive/data/<key>."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        method = zipfile.ZIP_DEFLATED if deflate_pickle else zipfile.ZIP_STORED
        archive.writestr(zipfile.ZipInfo("archive/data.pkl"), pickle_data, compress_type=method)
        archive.writestr(zipfile.ZipInfo("archive/byteorder"), b"little")
        for key, data in (storages or {}).items():
            archive.writestr(zipfile.ZipInfo(f"archive/data/{key}"), data)
        archive.writestr(zipfile.ZipInfo("archive/version"), b"3\n")
    return out.getvalue()


def torch_build_on_placeholder() -> bytes:
    return torch_archive(build_on_placeholder_pickle(), storages={"0": b"\0" * 16})


def torch_deflate_bomb(inflated: int = 64 << 20) -> bytes:
    """A .pt whose data.pkl is a pickle of one huge string of zeros, deflated at about 1000 to 1."""
    prefix = b"\x80\x02X" + struct.pack("<I", inflated)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunks = [compressor.compress(prefix)]
    zeros = b"\0" * (1 << 20)
    for _ in range(inflated // len(zeros)):
        chunks.append(compressor.compress(zeros))
    chunks.append(compressor.compress(b"."))
    chunks.append(compressor.flush())
    deflated = b"".join(chunks)
    size = len(prefix) + inflated + 1
    return _zip_with_raw_deflated("archive/data.pkl", deflated, size, zlib.crc32(b"", 0)) + b""


def _zip_with_raw_deflated(name: str, deflated: bytes, size: int, crc: int) -> bytes:
    """A one-member ZIP archive (plus byteorder) holding already-deflated bytes, without inflating them."""
    encoded = name.encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(deflated), size, len(encoded), 0)
    member = local + encoded + deflated
    central = struct.pack(
        "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(deflated), size, len(encoded), 0, 0, 0, 0,
        0, 0,
    ) + encoded  # fmt: skip
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(member), 0)
    return member + central + end


def metadata(parameters: dict[str, object], skeleton: dict[str, object] | None = None) -> dict[str, object]:
    doc: dict[str, object] = {"theta": "theta.metadata/1", "format": "safetensors"}
    if skeleton is not None:
        doc["skeleton"] = skeleton
    doc["parameters"] = parameters
    return doc


def zstd_claim(oid: str, stored: int, elements: int) -> dict[str, object]:
    """A parameter whose one dense step is a zstd object of `stored` bytes claiming `elements` float32 values."""
    value = {"oid": oid, "size": stored, "dtype": "float32", "shape": [elements], "codec": "zstd"}
    step = {"update": "dense", "hash": "sha256:" + ZERO_OID, "objects": {"value": value}}
    return {"dtype": "float32", "shape": [elements], "hash": "sha256:" + ZERO_OID, "steps": [step]}


def safetensors_skeleton(name: str, elements: int) -> bytes:
    """The skeleton a safetensors checkpoint of one float32 tensor `name` of `elements` values has."""
    header = json.dumps(
        {name: {"dtype": "F32", "shape": [elements], "data_offsets": [0, 4 * elements]}}, separators=(",", ":")
    ).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header


def zstd_bomb_object(nbytes: int = 1 << 30) -> bytes:
    """About 32 KiB of zstd that really decompresses to `nbytes` zero bytes."""
    import zstandard

    compressor = zstandard.ZstdCompressor(level=1).compressobj(size=nbytes)
    zeros = b"\0" * (1 << 22)
    pieces = [compressor.compress(zeros) for _ in range(nbytes // len(zeros))]
    return b"".join(pieces) + compressor.flush()


def metadata_negative_dimension() -> bytes:
    value = {"oid": ZERO_OID, "size": 0, "dtype": "float32", "shape": [-1, 4]}
    step = {"update": "dense", "hash": "sha256:" + ZERO_OID, "objects": {"value": value}}
    param = {"dtype": "float32", "shape": [-1, 4], "hash": "sha256:" + ZERO_OID, "steps": [step]}
    return json.dumps(metadata({"w": param})).encode()


def metadata_absurd_shape() -> bytes:
    param = zstd_claim(ZERO_OID, 10, 1)
    param["shape"] = [1 << 40, 1 << 40]
    return json.dumps(metadata({"w": param})).encode()


def metadata_too_many_dimensions() -> bytes:
    param = zstd_claim(ZERO_OID, 10, 1)
    param["shape"] = [1] * 1000
    return json.dumps(metadata({"w": param})).encode()


def metadata_deep_nesting(depth: int = 100_000) -> bytes:
    head = json.dumps(metadata({})).encode()[:-1]
    return head + b', "x": ' + b"[" * depth + b"]" * depth + b"}"


def metadata_deep_params(depth: int = 200) -> bytes:
    """Nesting deep enough to break recursive code later, but not Python's JSON parser."""
    param = zstd_claim(ZERO_OID, 10, 1)
    nested: object = 0
    for _ in range(depth):
        nested = {"a": nested}
    param["steps"][0]["params"] = {"deep": nested}  # type: ignore[index]
    return json.dumps(metadata({"w": param})).encode()


def pktline_lies() -> bytes:
    """pkt-line headers that are not hex, too short, or longer than the data."""
    return b"zzzz" + b"0003" + b"ffff" + b"ab"


def keras_archive_offset_before_start() -> bytes:
    """The seed .keras archive with four bytes inserted into its end record: the weights member's
    offset then comes out negative (found by the format fuzz test)."""
    data = (CORPUS / "seed.keras").read_bytes()
    return data[:-6] + b"\x83" * 4 + data[-6:]


def keras_archive_unknown_version() -> bytes:
    """The seed .keras archive whose first member needs zip version 20.0 to extract."""
    data = bytearray((CORPUS / "seed.keras").read_bytes())
    data[data.index(b"PK\x01\x02") + 6] = 200
    return bytes(data)


def keras_h5_name_not_utf8() -> bytes:
    """The seed Keras weights file with a group name made invalid UTF-8 (found by the format fuzz test)."""
    data = (CORPUS / "seed.weights.h5").read_bytes()
    return data.replace(b"layers\x00", b"laye\xc9s\x00", 1)


CORPUS_FILES: dict[str, Callable[[], bytes]] = {
    "safetensors-claims-4GiB.safetensors": safetensors_claiming,
    "safetensors-header-claims-100MiB.safetensors": safetensors_huge_header,
    "safetensors-deep-header.safetensors": lambda: safetensors_deep_header(20_000),
    "torch-build-on-placeholder.pt": torch_build_on_placeholder,
    "torch-deflate-bomb-64MiB.pt": torch_deflate_bomb,
    "metadata-negative-dimension.json": metadata_negative_dimension,
    "metadata-absurd-shape.json": metadata_absurd_shape,
    "metadata-too-many-dimensions.json": metadata_too_many_dimensions,
    "metadata-deep-nesting.json": lambda: metadata_deep_nesting(20_000),
    "metadata-deep-params.json": metadata_deep_params,
    "checkout-zstd-claims-1TiB.json": lambda: json.dumps(
        metadata({"w": zstd_claim(ZERO_OID, 32_000, 1 << 38)})
    ).encode(),
    "pktline-lies.bin": pktline_lies,
    "keras-offset-before-start.keras": keras_archive_offset_before_start,
    "keras-h5-name-not-utf8.weights.h5": keras_h5_name_not_utf8,
    "keras-unknown-zip-version.keras": keras_archive_unknown_version,
}


def write_corpus() -> None:
    CORPUS.mkdir(exist_ok=True)
    for name, make in CORPUS_FILES.items():
        (CORPUS / name).write_bytes(make())


if __name__ == "__main__":
    write_corpus()
    sys.exit(0)
