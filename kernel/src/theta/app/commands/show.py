"""`git theta show REV:PATH [--params GLOB ...] -o FILE`: tensors at a revision, as a safetensors file."""

from __future__ import annotations

import argparse
import json
import os
import struct
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from theta.errors import ThetaError

if TYPE_CHECKING:
    from theta.tensors import Tensor

SAFETENSORS_DTYPES = {
    "bool": "BOOL",
    "uint8": "U8",
    "int8": "I8",
    "uint16": "U16",
    "int16": "I16",
    "uint32": "U32",
    "int32": "I32",
    "uint64": "U64",
    "int64": "I64",
    "float16": "F16",
    "bfloat16": "BF16",
    "float32": "F32",
    "float64": "F64",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
}


def write_safetensors(
    target: Path, layouts: Sequence[tuple[str, str, tuple[int, ...], int]], load: Callable[[str], Tensor]
) -> None:
    """Write (name, dtype, shape, nbytes) tensors, loading one at a time, atomically into `target`."""
    header: dict[str, object] = {"__metadata__": {"exported_by": "git theta show"}}
    offset = 0
    for name, dtype, shape, nbytes in layouts:
        if dtype not in SAFETENSORS_DTYPES:
            raise ThetaError(f"parameter {name!r} is {dtype}, which safetensors cannot hold")
        header[name] = {
            "dtype": SAFETENSORS_DTYPES[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".theta-show-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(struct.pack("<Q", len(encoded)))
            out.write(encoded)
            for name, _, _, _ in layouts:
                out.write(load(name).data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_show(args: argparse.Namespace) -> int:
    from theta.api import open_session, repo_path, stored_metadata
    from theta.diffing.select import chain_objects, ensure_local, selected_names
    from theta.tensors import dtype

    rev, sep, path = args.spec.partition(":")
    if not sep or not path:
        raise ThetaError(f"expected REV:PATH (e.g. HEAD~1:model.safetensors), got {args.spec!r}")
    with open_session(".") as session:
        relpath = repo_path(session.repo, path)
        metadata = stored_metadata(session.repo, relpath, rev or "HEAD")
        names = selected_names(metadata, args.params, relpath)
        ensure_local(session.store, chain_objects(metadata, names), relpath, session.repo.cwd)
        layouts = []
        for name in names:
            param = metadata.parameters[name]
            numel = 1
            for d in param.shape:
                numel *= d
            layouts.append((name, param.dtype, param.shape, numel * dtype(param.dtype).itemsize))
        write_safetensors(
            Path(args.output), layouts, lambda name: session.params.load(metadata.parameters[name], relpath, name)
        )
    print(f"theta: wrote {len(names)} parameter(s) of {relpath} at {rev or 'HEAD'} to {args.output}")
    return 0


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "show",
        cmd_show,
        "export tensors of a checkpoint at a revision to a safetensors file",
        examples=["git theta show v1:model.safetensors --params 'lm_head.*' -o lm_head.safetensors"],
    )
    p.add_argument("spec", metavar="REV:PATH")
    p.add_argument("--params", nargs="+", action="extend", metavar="GLOB", help="only parameters these globs match")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the safetensors file to write")
