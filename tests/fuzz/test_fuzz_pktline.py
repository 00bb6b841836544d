"""git's pkt-line framing: any byte stream gives packets, a ProtocolError or an EOFError, nothing else."""

from __future__ import annotations

import io

from fuzz.budget import examples
from fuzz.hostile import CORPUS
from hypothesis import given, settings
from hypothesis import strategies as st

from theta.git.pktline import MAX_PAYLOAD, PacketReader, PacketWriter, ProtocolError

EXPECTED = (ProtocolError, EOFError)


def exercise(stream: bytes) -> None:
    reader = PacketReader(io.BytesIO(stream))
    try:
        reader.read_text_list()
        reader.read_keys()
        content = reader.content()
        buffer = memoryview(bytearray(4096))
        while content.readinto(buffer):
            pass
        while reader.read_packet() is not None:
            pass
    except EXPECTED:
        pass


HEADERS = st.one_of(
    st.binary(min_size=4, max_size=4),
    st.integers(0, 0xFFFF).map(lambda n: b"%04x" % n),
    st.sampled_from([b"0000", b"0001", b"0004", b"0005", b"fff0", b"ffff"]),
)


@settings(max_examples=examples(300))
@given(st.lists(st.tuples(HEADERS, st.binary(max_size=64)), max_size=8))
def test_any_stream_is_read_or_refused(parts: list[tuple[bytes, bytes]]) -> None:
    exercise(b"".join(h + body for h, body in parts))


@settings(max_examples=examples(100))
@given(st.binary(max_size=512))
def test_random_bytes_are_read_or_refused(data: bytes) -> None:
    exercise(data)


def test_corpus_stream_is_refused() -> None:
    exercise((CORPUS / "pktline-lies.bin").read_bytes())


@settings(max_examples=examples(100))
@given(st.lists(st.binary(max_size=3 * MAX_PAYLOAD // 2), max_size=4))
def test_content_round_trips(chunks: list[bytes]) -> None:
    out = io.BytesIO()
    writer = PacketWriter(out)
    content = writer.content()
    for chunk in chunks:
        content.write(chunk)
    content.finish()
    writer.flush()
    reader = PacketReader(io.BytesIO(out.getvalue()))
    got = bytearray()
    stream = reader.content()
    buffer = memoryview(bytearray(MAX_PAYLOAD))
    while n := stream.readinto(buffer):
        got += buffer[:n]
    assert bytes(got) == b"".join(chunks)
