"""External data files: the side file that `onnx.save_model(..., save_as_external_data=True)` writes.

Such a file is plain tensor bytes; which tensor lies where is written only in the .onnx file
that refers to it (TensorProto.external_data: location, offset, length). To clean a data
file, the .onnx files beside it in the working tree (and in the folders above it, up to
the repository's top) are walked until one names it; git runs filters at the top of the
work tree, so the current directory is the repository root. The skeleton then holds
everything needed to write the data file back, so a checkout does not need the .onnx file:
it is the kernel's (`theta.splice`, kind `onnx-data`), the data file without its tensors.
"""

from __future__ import annotations

import mmap
import os
import posixpath
from pathlib import Path
from typing import BinaryIO

from theta.errors import FormatError
from theta.formats import Checkpoint, Layout, Source
from theta.splice import Region, Skeleton, cut, nbytes, read_tensors, reading_extra, splice
from theta_format_onnx.walk import ExternalRef, walk_model
from theta_format_onnx.wire import WireError

DATA_KIND = "onnx-data"


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


def read_data(source: Source, model: str, refs: list[ExternalRef]) -> Checkpoint:
    where = f"{source.path} (external data of {model})"
    regions = []
    for r in refs:
        size = nbytes(r.dtype, r.shape)
        if r.length is not None and r.length != size:
            raise FormatError(
                f"{where}: tensor {r.name!r} has length {r.length} in {model}, but {r.dtype} {list(r.shape)}"
                f" needs {size} bytes; save the model again"
            )
        regions.append(Region(name=r.name, dtype=r.dtype, shape=r.shape, offset=r.offset, length=size))
    spooled = source.spool()
    file_size = spooled.stat().st_size
    end = max((r.end for r in regions), default=0)
    if end > file_size:
        raise FormatError(
            f"{where}: file is truncated or does not belong to {model}: its tensors need {end} bytes,"
            f" the file has {file_size}"
        )
    handle = open(spooled, "rb")  # noqa: SIM115 - closed by the iterator
    try:
        skeleton = cut(handle, regions, kind=DATA_KIND, path=where, extra={"model": model})
    except BaseException:
        handle.close()
        raise
    return Checkpoint(
        skeleton=skeleton.encode(), parameters=read_tensors(handle, skeleton.regions, path=where, close=True)
    )


def write_data(layout: Layout, sink: BinaryIO) -> None:
    skeleton = Skeleton.decode(layout.skeleton, kind=DATA_KIND, path=layout.path)
    with reading_extra(layout.path):
        model = str(skeleton.extra["model"])
    if not skeleton.matches(layout.parameters):
        changed = skeleton.differences(layout.parameters)
        raise FormatError(
            f"{layout.path}: external data of {model}: the parameters no longer match the offsets that {model}"
            f" records (changed: {changed[:5]}); the data file cannot be laid out anew"
            " without rewriting the .onnx file: save the model again with onnx.save_model(...,"
            " save_as_external_data=True)"
        )
    splice(skeleton, layout, sink)
