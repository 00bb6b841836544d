"""Reading and writing a checkpoint with a format plugin the way the clean and smudge filters do."""

from __future__ import annotations

import io

from theta.formats import CheckpointFormat, Layout, TensorInfo, open_source
from theta.tensors import Tensor


def read_checkpoint(fmt: CheckpointFormat, data: bytes, path: str = "model") -> tuple[bytes, dict[str, Tensor]]:
    """Read `data` with `fmt` the way the clean filter does: as a stream, tensors consumed in file order."""
    with open_source(path, io.BytesIO(data)) as source:
        checkpoint = fmt.read(source)
        tensors = {name: Tensor(dtype=t.dtype, shape=t.shape, data=bytes(t.data)) for name, t in checkpoint.parameters}
        return checkpoint.skeleton, tensors


def write_checkpoint(fmt: CheckpointFormat, skeleton: bytes, tensors: dict[str, Tensor]) -> bytes:
    """Write a checkpoint from a skeleton and tensors, as the smudge filter does."""
    layout = Layout(
        skeleton=skeleton,
        parameters={n: TensorInfo(dtype=t.dtype, shape=t.shape) for n, t in tensors.items()},
        load=lambda name: tensors[name],
        hashes={n: t.sha256() for n, t in tensors.items()},
    )
    sink = io.BytesIO()
    fmt.write(layout, sink)
    return sink.getvalue()
