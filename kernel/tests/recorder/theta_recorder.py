"""A plugin implementing every hook, whose objects log each call to $THETA_RECORDER_LOG.

`kernel/tests/test_every_hook_is_called.py` installs it as a distribution and drives real git
commands; every hook spec must have an object here that the kernel then uses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

import numpy as np
from attrs import frozen

import theta
from theta.bits import raw_bits
from theta.diffs import DiffRenderer, FileDiff, RenderOutput
from theta.errors import FormatError
from theta.formats import Checkpoint, CheckpointFormat, Layout, Source, TensorInfo
from theta.merges import MergeStrategy
from theta.tensors import Tensor
from theta.updates import Update, UpdateType

MAGIC = b"REC1\n"


def record(event: str) -> None:
    with open(os.environ["THETA_RECORDER_LOG"], "a") as log:
        log.write(event + "\n")


def rec_file(arrays: dict[str, np.ndarray]) -> bytes:
    """A checkpoint of the recorder's format: magic, a JSON line of names and lengths, float32 values."""
    header = json.dumps([[name, int(a.size)] for name, a in arrays.items()]).encode()
    return MAGIC + header + b"\n" + b"".join(a.astype("<f4").tobytes() for a in arrays.values())


@frozen
class RecFormat(CheckpointFormat):
    name = "rec"
    extensions = (".rec",)

    def sniff(self, head: bytes) -> bool:
        return head.startswith(MAGIC)

    def read(self, source: Source) -> Checkpoint:
        record("theta_register_formats:read")
        source.read(len(MAGIC))
        header = bytearray()
        while not header.endswith(b"\n"):
            byte = source.read(1)
            if not byte:
                raise FormatError(f"{source.path}: no header line")
            header += byte
        entries = json.loads(header)

        def parameters() -> Iterator[tuple[str, Tensor]]:
            for name, size in entries:
                yield name, Tensor(dtype="float32", shape=(size,), data=source.read_exact(4 * size, name))

        return Checkpoint(skeleton=MAGIC + bytes(header), parameters=parameters())

    def write(self, layout: Layout, sink: BinaryIO) -> None:
        record("theta_register_formats:write")
        sink.write(MAGIC + json.dumps([[n, i.shape[0]] for n, i in layout.parameters.items()]).encode() + b"\n")
        for name in layout.parameters:
            sink.write(layout.load(name).data)


@frozen
class RecXor(UpdateType):
    name = "rec-xor"
    cost = 1

    def encode(self, tensor: Tensor, base: Tensor | None, side_data: Any = None) -> Update | None:
        record("theta_register_update_types:encode")
        if base is None or not tensor.same_layout(base):
            return None
        return Update(arrays={"xor": Tensor.from_numpy(np.bitwise_xor(raw_bits(tensor), raw_bits(base)))})

    def decode(self, update: Update, base: Tensor | None, info: TensorInfo) -> Tensor:
        assert base is not None
        bits = np.bitwise_xor(raw_bits(base), update.arrays["xor"].numpy())
        return Tensor(dtype=info.dtype, shape=info.shape, data=bits.tobytes())


@frozen
class RecTheirs(MergeStrategy):
    name = "rec-theirs"

    def merge(self, name: str, base: Tensor | None, ours: Tensor | None, theirs: Tensor | None, options: Any) -> Any:
        record("theta_register_merge_strategies:merge")
        return theirs


@frozen
class RecRenderer(DiffRenderer):
    name = "rec-lines"

    def render(self, diffs: Iterable[FileDiff], output: RenderOutput) -> None:
        record("theta_register_diff_renderers:render")
        for diff in diffs:
            for param in diff.parameters:
                output.stream.write(f"rec {diff.path} {param.name} {param.status}\n")


class Plugin:
    @theta.hookimpl
    def theta_register_formats(self, register: Callable[[Any], None]) -> None:
        register(RecFormat())

    @theta.hookimpl
    def theta_register_update_types(self, register: Callable[[Any], None]) -> None:
        register(RecXor())

    @theta.hookimpl
    def theta_register_merge_strategies(self, register: Callable[[Any], None]) -> None:
        register(RecTheirs())

    @theta.hookimpl
    def theta_register_diff_renderers(self, register: Callable[[Any], None]) -> None:
        register(RecRenderer())


plugin = Plugin()
