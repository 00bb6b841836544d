"""A plugin that registers the format name `npz` a second time, beside a format of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

import theta
from theta.errors import FormatError
from theta.formats import Checkpoint, CheckpointFormat, Layout, Source


class _Claims(CheckpointFormat):
    extensions = (".npz",)

    def sniff(self, head: bytes) -> bool:
        return True

    def read(self, source: Source) -> Checkpoint:
        raise FormatError(f"{source.path}: the broken duplicate plugin read this file")

    def write(self, layout: Layout, sink: BinaryIO) -> None:
        raise FormatError(f"{layout.path}: the broken duplicate plugin wrote this file")


class DuplicateNpz(_Claims):
    name = "npz"


class OwnFormat(_Claims):
    name = "broken-own"


@theta.hookimpl
def theta_register_formats(register: Callable[[CheckpointFormat], None]) -> None:
    register(OwnFormat())
    register(DuplicateNpz())
