from __future__ import annotations

import io

import pytest

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
