"""The kernel's skeletons (`theta.splice`) for this plugin's formats, with the file's byte order.

Every format here ends the same way: it finds where each tensor's bytes lie in the file (HDF5
dataset offsets, a TensorFlow index) and the kernel cuts the file there. What the kernel does
not know is that a file may store a tensor big-endian: such a region carries `"order": ">"` in
its `extra`, and its bytes are swapped to the kernel's little-endian form when read and back
when written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any, BinaryIO

import numpy as np

from theta.formats import Layout
from theta.splice import Region, Skeleton, raw, read_tensors, reading_extra, splice
from theta.tensors import Tensor, dtype

ORDERS = ("<", ">")


def region(name: str, dtype_name: str, shape: tuple[int, ...], offset: int, size: int, order: str = "<") -> Region:
    """The region of a tensor stored in `order` ("<" little-endian, ">" big-endian)."""
    extra = {"order": order} if order != "<" else {}
    return Region(name=name, dtype=dtype_name, shape=shape, offset=offset, length=size, extra=extra)


def to_little(region: Region, data: Any) -> Any:
    """The region's bytes in the other byte order when the file is big-endian (the swap is its own inverse)."""
    width = dtype(region.dtype).itemsize
    if region.extra.get("order", "<") == "<" or width == 1:
        return data
    unit = {"complex64": 4, "complex128": 8}.get(region.dtype, width)
    return np.frombuffer(data, dtype=f">u{unit}").astype(f"<u{unit}").tobytes()


def _encode(path: str, region: Region, tensor: Tensor) -> Any:
    return to_little(region, raw(region, tensor, path))


def tensors(file: BinaryIO, regions: Iterable[Region], path: str) -> Iterator[tuple[str, Tensor]]:
    """Each region's tensor, little-endian, read from `file` (seekable), which is closed at the end."""
    return read_tensors(file, regions, path=path, decode=to_little, close=True)


def decode(layout: Layout, kind: str) -> Skeleton:
    """The stored skeleton of `kind`, with each region's byte order checked."""
    skeleton = Skeleton.decode(layout.skeleton, kind=kind, path=layout.path)
    with reading_extra(layout.path):
        for r in skeleton.regions:
            if r.extra.get("order", "<") not in ORDERS:
                raise ValueError(f"parameter {r.name!r} has byte order {r.extra['order']!r}")
    return skeleton


def write(skeleton: Skeleton, layout: Layout, sink: BinaryIO) -> None:
    """The file back, with the tensors `layout.load` gives in the file's byte order."""
    splice(skeleton, layout, sink, encode=partial(_encode, layout.path))
