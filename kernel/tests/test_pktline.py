from __future__ import annotations

import fcntl
import io
import os
from pathlib import Path

import pytest

from theta.app.filter_process import PIPE_BYTES, widen_pipe
from theta.git.pktline import MAX_PAYLOAD, PacketReader, PacketWriter, ProtocolError


def framed(*payloads: bytes | None) -> bytes:
    out = io.BytesIO()
    writer = PacketWriter(out)
    for payload in payloads:
        if payload is None:
            writer.flush()
        else:
            writer.packet(payload)
    return out.getvalue()


def test_text_lists_and_flush() -> None:
    reader = PacketReader(io.BufferedReader(io.BytesIO(framed(b"command=clean\n", b"pathname=a b\n", None))))
    assert reader.read_keys() == {"command": "clean", "pathname": "a b"}


def test_content_stream_spans_packets_and_stops_at_flush() -> None:
    data = bytes(range(256)) * 1000
    out = io.BytesIO()
    writer = PacketWriter(out)
    content = writer.content()
    for start in range(0, len(data), 7777):
        content.write(data[start : start + 7777])
    content.finish()
    writer.flush()
    writer.text_list("next")
    packets = out.getvalue()
    assert all(int(packets[i : i + 4], 16) - 4 <= MAX_PAYLOAD for i in (0,))
    reader = PacketReader(io.BufferedReader(io.BytesIO(packets)))
    stream = reader.content()
    assert stream.readall() == data
    assert reader.read_text_list() == ["next"]


def test_drain_consumes_the_rest() -> None:
    reader = PacketReader(io.BufferedReader(io.BytesIO(framed(b"x" * 100, b"y" * 100, None, b"after\n", None))))
    stream = reader.content()
    assert stream.read(10) == b"x" * 10
    stream.drain()
    assert reader.read_text_list() == ["after"]


@pytest.mark.parametrize("header", [b"zzzz", b"0003"])
def test_bad_headers_are_protocol_errors(header: bytes) -> None:
    with pytest.raises(ProtocolError):
        PacketReader(io.BufferedReader(io.BytesIO(header + b"abc"))).read_packet()


def test_eof_is_reported() -> None:
    with pytest.raises(EOFError):
        PacketReader(io.BufferedReader(io.BytesIO(b"0010ab"))).read_packet()


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are a Linux feature")
def test_the_filter_widens_the_pipes_git_talks_through(tmp_path: Path) -> None:
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    read_end, write_end = os.pipe()
    try:
        before = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
        widen_pipe(write_end)
        assert fcntl.fcntl(read_end, fcntl.F_GETPIPE_SZ) == (PIPE_BYTES if limit >= PIPE_BYTES else before)
        widen_pipe(read_end, size=limit * 2)  # beyond the system's limit: left as it was, no error
        assert fcntl.fcntl(read_end, fcntl.F_GETPIPE_SZ) in (PIPE_BYTES, before)
    finally:
        os.close(read_end)
        os.close(write_end)
    with open(tmp_path / "file", "wb") as regular:
        widen_pipe(regular.fileno())  # not a pipe: nothing to do
