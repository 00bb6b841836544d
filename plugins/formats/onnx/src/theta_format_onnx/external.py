"""External data files: the side file that `onnx.save_model(..., save_as_external_data=True)` writes.

Such a file is plain tensor bytes; which tensor lies where is written only in the .onnx file
that refers to it (TensorProto.external_data: location, offset, length). To clean a data
file, the .onnx files beside it in the working tree (and in the folders above it, up to
the repository's top) are walked until one names it; git runs filters at the top of the
work tree, so the current directory is the repository root. The skeleton then holds
everything needed to write the data file back, so a checkout does not need the .onnx file.
"""

from __future__ import annotations

import mmap
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from theta.errors import FormatError
from theta.formats import Checkpoint, Layout, Source, TensorInfo
from theta.tensors import Tensor, dtype
from theta_format_onnx import skeleton as S
from theta_format_onnx.walk import ExternalRef, walk_model
from theta_format_onnx.wire import WireError


def _candidates(folder: Path, data_name: str) -> list[Path]:
    try:
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".onnx" and p.is_file())
    except OSError:
        return []
    stem = data_name.rsplit(".", 1)[0]
    return sorted(found, key=lambda p: p.name != stem)


def _external_refs(model: Path) -> list[ExternalRef]:
    try:
        with open(model, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return walk_model(buf).externals
    except (OSError, ValueError, WireError):
        return []


def find_model(data_path: str, root: Path) -> tuple[str, list[ExternalRef]] | None:
    """The first .onnx file (repository-relative) whose external data names `data_path`, and its refs."""
    target = posixpath.normpath(data_path)
    folder = posixpath.dirname(target)
    while True:
        for model in _candidates(root / folder, posixpath.basename(target)):
            rel = posixpath.join(folder, model.name) if folder else model.name
            refs = [
                r for r in _external_refs(model)
                if posixpath.normpath(posixpath.join(folder, r.location.replace(os.sep, "/"))) == target
            ]  # fmt: skip
            if refs:
                return rel, refs
        if not folder:
            return None
        folder = posixpath.dirname(folder)


def _nbytes(info: ExternalRef) -> int:
    n = dtype(info.dtype).itemsize
    for d in info.shape:
        n *= d
    return n


def read_data(source: Source, model: str, refs: list[ExternalRef]) -> Checkpoint:
    where = f"{source.path} (external data of {model})"
    spans = sorted(refs, key=lambda r: r.offset)
    position = 0
    for r in spans:
        size = _nbytes(r)
        if r.length is not None and r.length != size:
            raise FormatError(
                f"{where}: tensor {r.name!r} has length {r.length} in {model}, but {r.dtype} {list(r.shape)}"
                f" needs {size} bytes; save the model again"
            )
        if r.offset < position:
            raise FormatError(f"{where}: tensor {r.name!r} at offset {r.offset} overlaps the tensor before it")
        position = r.offset + size
    spooled = source.spool()
    file_size = spooled.stat().st_size
    if position > file_size:
        raise FormatError(
            f"{where}: file is truncated or does not belong to {model}: its tensors need {position} bytes,"
            f" the file has {file_size}"
        )
    handle = open(spooled, "rb")  # noqa: SIM115 - closed by the generator
    body = bytearray()
    entries = []
    position = 0
    for r in spans:
        handle.seek(position)
        body += handle.read(r.offset - position)
        entries.append(S.SpanEntry(name=r.name, dtype=r.dtype, shape=r.shape, at=len(body), size=_nbytes(r)))
        position = r.offset + _nbytes(r)
    handle.seek(position)
    body += handle.read()
    index = S.DataIndex(model=model, spans=tuple(entries))
    return Checkpoint(
        skeleton=S.pack(S.DATA, S.data_to_json(index), bytes(body)),
        parameters=_span_tensors(handle, spans),
    )


def _span_tensors(handle: BinaryIO, spans: list[ExternalRef]) -> Iterator[tuple[str, Tensor]]:
    try:
        for r in spans:
            handle.seek(r.offset)
            yield r.name, Tensor(dtype=r.dtype, shape=r.shape, data=handle.read(_nbytes(r)))
    finally:
        handle.close()


def write_data(index: S.DataIndex, body: memoryview, layout: Layout, sink: BinaryIO) -> None:
    stored = {s.name: TensorInfo(dtype=s.dtype, shape=s.shape) for s in index.spans}
    if stored != dict(layout.parameters):
        changed = sorted({name for name, _ in set(stored.items()) ^ set(dict(layout.parameters).items())})
        raise FormatError(
            f"external data of {index.model}: the parameters no longer match the offsets that {index.model}"
            f" records (changed: {changed[:5]}); the data file cannot be laid out anew"
            " without rewriting the .onnx file: save the model again with onnx.save_model(...,"
            " save_as_external_data=True)"
        )
    cursor = 0
    for s in index.spans:
        sink.write(body[cursor : s.at])
        data = layout.load(s.name).data
        if len(data) != s.size:
            raise FormatError(f"external data of {index.model}: parameter {s.name!r} loaded {len(data)} bytes,"
                              f" needs {s.size}")  # fmt: skip
        sink.write(data)
        cursor = s.at
    sink.write(body[cursor:])
