"""HDF5 weight files as Keras writes them: datasets found with h5py, rebuilt with h5py.

Contiguous datasets of numeric dtypes become parameters, named by their HDF5 path
(`layers/dense/vars/0`). Keras stores bfloat16 and float8 weights as opaque 1- or 2-byte
values with a `dtype` attribute naming the real type; they are read as that type. Chunked,
compressed and compact datasets, strings and other dtypes stay in the skeleton as bytes.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from attrs import evolve

from theta.errors import FormatError
from theta.formats import Layout
from theta.splice import Region, Skeleton
from theta.tensors import DTYPES, Tensor
from theta_format_tensorflow import byteorder

if TYPE_CHECKING:
    import h5py

COPY_BLOCK = 1 << 22
SIGNATURE = b"\x89HDF\r\n\x1a\n"
SIGNATURE_OFFSETS = (0, 512, 1024, 2048)
OPAQUE_DTYPES = {"bfloat16", "float8_e4m3fn", "float8_e5m2"}


def _h5py() -> Any:
    """h5py, imported when a file is read or written: not by every git command that loads the plugins."""
    return importlib.import_module("h5py")


def has_signature(head: bytes) -> bool:
    return any(head[at : at + len(SIGNATURE)] == SIGNATURE for at in SIGNATURE_OFFSETS)


def theta_dtype(dataset: h5py.Dataset) -> tuple[str, str] | None:
    """The dataset's theta dtype and byte order, or None when it is not a parameter."""
    np_dtype = dataset.dtype
    if np_dtype.kind == "V" and np_dtype.fields is None and np_dtype.itemsize in (1, 2):
        declared = dataset.attrs.get("dtype")
        if isinstance(declared, bytes):
            declared = declared.decode(errors="replace")
        if declared in OPAQUE_DTYPES and DTYPES[declared].itemsize == np_dtype.itemsize:
            return declared, "<"
        return None
    if np_dtype.kind not in "biufc" or np_dtype.name not in DTYPES:
        return None
    order = ">" if np_dtype.byteorder == ">" else "<"
    return np_dtype.name, order


def regions_of(file: h5py.File, base: int = 0) -> list[Region]:
    """Every contiguous numeric dataset of `file`, its offset shifted by `base`."""
    found: list[Region] = []

    def visit(name: str | bytes, obj: Any) -> None:
        if not isinstance(obj, _h5py().Dataset):
            return
        if isinstance(name, bytes):  # h5py gives a name that is not UTF-8 as bytes
            raise ValueError(f"the dataset name {name!r} is not UTF-8")
        kind = theta_dtype(obj)
        offset = obj.id.get_offset()
        if kind is None or offset is None or obj.shape is None:
            return
        size = obj.id.get_storage_size()
        if size != obj.size * obj.dtype.itemsize or size == 0:
            return
        found.append(byteorder.region(name, kind[0], tuple(obj.shape), base + offset, size, kind[1]))

    file.visititems(visit)
    return found


@contextmanager
def open_hdf5(fileobj: BinaryIO, path: str) -> Iterator[h5py.File]:
    try:
        handle = _h5py().File(fileobj, "r")
    except (OSError, ValueError) as exc:
        raise FormatError(
            f"{path}: not a readable HDF5 file ({exc}); it may be truncated or of another format"
        ) from None
    try:
        yield handle
    except (KeyError, RuntimeError, OSError, ValueError, TypeError) as exc:
        # h5py reports a damaged structure found while walking the file this way.
        raise FormatError(f"{path}: a damaged HDF5 file ({type(exc).__name__}: {exc}); it may be truncated") from None
    finally:
        handle.close()


def numpy_for(tensor: Tensor) -> np.ndarray:
    """An array h5py can store: opaque types as `V<n>` (as Keras writes them)."""
    if tensor.dtype in OPAQUE_DTYPES:
        return np.frombuffer(bytes(tensor.data), dtype=f"V{DTYPES[tensor.dtype].itemsize}").reshape(tensor.shape)
    return tensor.numpy()


def rebuild(skeleton: Skeleton, layout: Layout, base: int, size: int) -> BinaryIO:
    """An HDF5 file (a temporary file at position 0) for a layout that no longer matches the skeleton.

    The HDF5 file found at `base` (`size` bytes) of the skeleton's file is put back with the
    parameters that kept their dtype and shape (others are zero-filled), then h5py deletes
    datasets the layout lacks and (re)creates those that are new or changed, keeping their
    attributes. The result is valid but not byte-identical to anything; space of deleted
    datasets is not reclaimed.
    """
    wanted = dict(layout.parameters)
    stored = {r.name: r for r in skeleton.regions}

    def load_or_zeros(name: str) -> Tensor:
        region = stored[name]
        if wanted.get(name) == region.info:
            return layout.load(name)
        return Tensor(dtype=region.dtype, shape=region.shape, data=bytes(region.length))

    whole = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, who closes it
    byteorder.write(skeleton, evolve(layout, load=load_or_zeros), whole)
    inner = whole
    if base != 0 or size != skeleton.size:
        inner = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, who closes it
        whole.seek(base)
        copy_range(whole, inner, size)
        whole.close()
    inner.seek(0)
    try:
        with _h5py().File(inner, "r+") as h5:
            for name in stored:
                if name not in wanted:
                    del h5[name]
            for name, info in wanted.items():
                if name in stored and stored[name].info == info:
                    continue
                attrs: dict[str, Any] = {}
                if name in h5:
                    attrs = dict(h5[name].attrs)
                    del h5[name]
                dataset = h5.create_dataset(name, data=numpy_for(layout.load(name)))
                if info.dtype in OPAQUE_DTYPES:
                    attrs["dtype"] = info.dtype
                for key, value in attrs.items():
                    dataset.attrs[key] = value
    except (OSError, ValueError, KeyError, TypeError) as exc:
        inner.close()
        raise FormatError(f"{layout.path}: cannot rebuild the HDF5 file for the changed parameters: {exc}") from None
    inner.seek(0)
    return inner


def copy_range(source: BinaryIO, sink: BinaryIO, size: int) -> None:
    left = size
    while left > 0:
        block = source.read(min(left, COPY_BLOCK))
        if not block:
            raise FormatError("HDF5 member ends early while rebuilding")
        sink.write(block)
        left -= len(block)


def copy_stream(source: BinaryIO, sink: BinaryIO) -> None:
    while block := source.read(COPY_BLOCK):
        sink.write(block)
