"""What a checkpoint-format plugin implements, and what the kernel hands it.

Reading: the kernel gives the format a `Source` (the file's bytes as git streams them) and the
format returns a `Checkpoint`: an opaque `skeleton` (everything in the file that is not a
parameter: headers, graph, pickled structure) and its parameters, in file order, as an
iterator the kernel consumes once. A format that can parse the stream as it arrives keeps
memory to one tensor at a time; one that needs random access calls `Source.spool()`.

Writing: the kernel gives the format a `Layout` (the skeleton, each parameter's dtype and
shape, and a `load` callable that decodes one parameter on demand) and a binary sink.
Writing the skeleton and tensors that were read must reproduce the file exactly; a layout
whose parameters differ from the skeleton's (after a merge) must still give a valid file.
"""

from __future__ import annotations

import abc
import io
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, ClassVar, Protocol

from attrs import field, frozen

from theta.errors import FormatError, ThetaError
from theta.tensors import Tensor

SNIFF_BYTES = 4096


class ByteStream(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...
    def readinto(self, buffer: memoryview, /) -> int: ...


@frozen(kw_only=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...] = field(converter=tuple)


@frozen(kw_only=True)
class Checkpoint:
    skeleton: bytes
    parameters: Iterator[tuple[str, Tensor]]


@frozen(kw_only=True)
class Layout:
    """What `write` gets.

    `hashes` gives each parameter's sha256 (hex) without loading it: a format that keeps a
    checksum over tensor bytes in its skeleton (a zip CRC) can tell that it still holds.
    `path` is the file's path in the repository, for error messages.
    """

    skeleton: bytes
    parameters: Mapping[str, TensorInfo]
    load: Callable[[str], Tensor]
    hashes: Mapping[str, str] = field(factory=dict)
    path: str = "checkpoint"


class Source:
    """A checkpoint's bytes, readable once from the start, with its first bytes peeked.

    `path` is the file's path in the repository; use it in error messages.
    """

    def __init__(self, path: str, stream: ByteStream, head: bytes, spool_dir: Path | None = None):
        self.path = path
        self.head = head
        self._stream = stream
        self._offset = 0
        self._spool_dir = spool_dir
        self._spooled: Path | None = None

    @property
    def offset(self) -> int:
        """How many bytes have been consumed so far."""
        return self._offset

    def read(self, n: int) -> bytes:
        """Exactly `n` bytes, or fewer only at the end of the file."""
        out = bytearray(n)
        got = self.readinto(memoryview(out))
        return bytes(out[:got])

    def read_exact(self, n: int, what: str) -> bytearray:
        """Exactly `n` bytes into a fresh buffer; a short file is a `FormatError` naming `what`."""
        out = bytearray(n)
        got = self.readinto(memoryview(out))
        if got != n:
            raise FormatError(
                f"{self.path}: file is truncated: {what} needs {n} bytes at offset"
                f" {self._offset - got}, only {got} remain"
            )
        return out

    def readinto(self, buffer: memoryview) -> int:
        filled = 0
        head_left = len(self.head) - self._offset
        if head_left > 0:
            take = min(head_left, len(buffer))
            buffer[:take] = self.head[self._offset : self._offset + take]
            filled = take
        while filled < len(buffer):
            got = self._stream.readinto(buffer[filled:])
            if not got:
                break
            filled += got
        self._offset += filled
        return filled

    def read_rest(self) -> bytes:
        chunks = []
        while chunk := self.read(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    def spool(self) -> Path:
        """Copy the rest of the file into a temporary file and return its path.

        For formats that need random access. Must be called before any other read; the
        file is deleted when the clean of this source ends.
        """
        if self._spooled is None:
            if self._offset:
                raise RuntimeError("spool() must be called before reading")
            fd, name = tempfile.mkstemp(prefix=f"theta-spool-{os.getpid()}-", dir=self._spool_dir)
            with os.fdopen(fd, "wb") as out:
                buffer = memoryview(bytearray(1 << 22))
                while got := self.readinto(buffer):
                    out.write(buffer[:got])
            self._spooled = Path(name)
        return self._spooled

    def close(self) -> None:
        if self._spooled is not None:
            self._spooled.unlink(missing_ok=True)
            self._spooled = None


@contextmanager
def open_source(path: str, stream: ByteStream, spool_dir: Path | None = None) -> Iterator[Source]:
    """The one way to read a checkpoint: `stream` as a `Source` with its head peeked.

    Whatever the format spooled is deleted when the block ends.
    """
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream, 1 << 20)  # type: ignore[arg-type]
    head = buffered.peek(SNIFF_BYTES)[:SNIFF_BYTES]
    buffered.read(len(head))
    source = Source(path, buffered, head, spool_dir=spool_dir)
    try:
        yield source
    finally:
        source.close()


@contextmanager
def open_file_source(file: Path, path: str | None = None) -> Iterator[Source]:
    """A checkpoint on disk as a `Source`; `path` names it in messages (default: the file)."""
    try:
        raw = open(file, "rb", buffering=0)  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ThetaError(f"{path or file}: cannot read {file}: {exc.strerror or exc}") from None
    with raw, open_source(path or str(file), raw) as source:
        yield source


class CheckpointFormat(abc.ABC):
    """A checkpoint format. Implement as a frozen attrs class and register an instance.

    `name` is what `.gitattributes` (`theta-format=NAME`) and `--format` use; `extensions`
    are lower-case file suffixes that suggest the format; `sniff` decides from the first
    bytes of a file.
    """

    name: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def sniff(self, head: bytes) -> bool:
        """True when `head` (the first bytes of a file, up to 4 KiB) can start this format."""

    @abc.abstractmethod
    def read(self, source: Source) -> Checkpoint:
        """Parse a checkpoint; raise `FormatError` naming `source.path` on bad input."""

    @abc.abstractmethod
    def write(self, layout: Layout, sink: BinaryIO) -> None:
        """Write the checkpoint described by `layout`, loading each tensor when needed."""

    def skeleton_state(self, skeleton: bytes) -> bytes:
        """The part of a skeleton that a merge compares: its non-tensor state.

        Called by the merge driver only when both branches changed the skeleton's bytes: equal
        states merge without a conflict (our skeleton is kept), different ones are a conflict.
        The default is the skeleton itself; a format whose skeleton also holds what follows
        from the tensors alone (an id or checksum computed from their bytes) leaves that out.
        """
        return skeleton
