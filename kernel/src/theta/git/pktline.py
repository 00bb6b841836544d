"""git's pkt-line framing: 4 hex digits of length (counting themselves), then the payload."""

from __future__ import annotations

import io
from typing import BinaryIO

MAX_PAYLOAD = 65516
FLUSH = b"0000"


class ProtocolError(Exception):
    pass


class PacketReader:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def _read_exact(self, n: int) -> bytes:
        data = self._stream.read(n)
        if data is None or len(data) != n:
            raise EOFError("the other side closed the pipe")
        return data

    def _length(self) -> int:
        """Payload length of the next packet; 0 for a flush packet."""
        header = self._read_exact(4)
        try:
            size = int(header, 16)
        except ValueError:
            raise ProtocolError(f"bad pkt-line header {header!r}") from None
        if size == 0:
            return 0
        if size <= 4:
            raise ProtocolError(f"bad pkt-line length {size}")
        return size - 4

    def read_packet(self) -> bytes | None:
        """The next payload, or None at a flush packet."""
        size = self._length()
        return None if size == 0 else self._read_exact(size)

    def read_text_list(self) -> list[str]:
        """Text packets up to the next flush, without trailing newlines."""
        lines = []
        while (packet := self.read_packet()) is not None:
            try:
                lines.append(packet.decode().rstrip("\n"))
            except UnicodeDecodeError:
                raise ProtocolError(f"a text packet is not UTF-8: {packet[:40]!r}") from None
        return lines

    def read_keys(self) -> dict[str, str]:
        keys = {}
        for line in self.read_text_list():
            key, _, value = line.partition("=")
            keys[key] = value
        return keys

    def content(self) -> ContentStream:
        return ContentStream(self)

    def _readinto_payload(self, buffer: memoryview, size: int) -> None:
        view = buffer[:size]
        got = 0
        while got < size:
            n = self._stream.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                raise EOFError("the other side closed the pipe")
            got += n


class ContentStream(io.RawIOBase):
    """The content packets of one request as a readable stream that ends at the flush."""

    def __init__(self, reader: PacketReader) -> None:
        super().__init__()
        self._reader = reader
        self._remaining = 0  # bytes of the current packet not read yet
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._remaining == 0:
            if self.done:
                return 0
            self._remaining = self._reader._length()
            if self._remaining == 0:
                self.done = True
                return 0
        take = min(len(buffer), self._remaining)
        self._reader._readinto_payload(memoryview(buffer).cast("B"), take)
        self._remaining -= take
        return take

    def drain(self) -> None:
        """Consume the rest of the content, up to and including its flush."""
        sink = memoryview(bytearray(MAX_PAYLOAD))
        while self.readinto(sink):
            pass


class PacketWriter:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def packet(self, payload: bytes | memoryview) -> None:
        self._stream.write(b"%04x" % (len(payload) + 4))
        self._stream.write(payload)

    def text(self, *lines: str) -> None:
        for line in lines:
            self.packet((line + "\n").encode())

    def flush(self) -> None:
        self._stream.write(FLUSH)
        self._stream.flush()

    def text_list(self, *lines: str) -> None:
        self.text(*lines)
        self.flush()

    def content(self) -> ContentWriter:
        return ContentWriter(self)


class ContentWriter:
    """A writable stream that frames whatever is written into content packets."""

    def __init__(self, writer: PacketWriter) -> None:
        self._writer = writer
        self._buffer = bytearray()
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        if self._buffer:
            take = min(n, MAX_PAYLOAD - len(self._buffer))
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) == MAX_PAYLOAD:
                self._writer.packet(self._buffer)
                self._buffer = bytearray()
        while len(view) >= MAX_PAYLOAD:
            self._writer.packet(view[:MAX_PAYLOAD])
            view = view[MAX_PAYLOAD:]
        if len(view):
            self._buffer += view
        self.written += n
        return n

    def finish(self) -> None:
        if self._buffer:
            self._writer.packet(self._buffer)
            self._buffer = bytearray()
