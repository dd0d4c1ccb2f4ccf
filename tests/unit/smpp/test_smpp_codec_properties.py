"""Property tests of the codec: round trips, and a fuzz of the incremental decoder."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smpp_strategies import pdus

from pigeon.smpp import pdu as p
from pigeon.smpp.codec import DecodeError, DecodeResult, PduDecoder, decode, encode

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed_in_chunks(data: bytes, cuts: list[int]) -> list[DecodeResult]:
    """Feed ``data`` to a fresh decoder, split at the given offsets."""
    decoder = PduDecoder()
    out: list[DecodeResult] = []
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    for start, stop in itertools.pairwise(bounds):
        out.extend(decoder.feed(data[start:stop]))
    return out


def assert_well_behaved(results: list[DecodeResult]) -> None:
    """No result comes from the decoder's safety net, and every error can be answered."""
    for result in results:
        if isinstance(result, DecodeError):
            assert "unexpected" not in result.reason, result
            answer = result.response()
            if answer is not None:
                encode(answer)


@given(pdus)
def test_round_trip_encode_decode(pdu: p.Pdu) -> None:
    """Any valid PDU decodes back to an equal PDU."""
    assert decode(encode(pdu)) == pdu


@given(pdus)
def test_round_trip_is_byte_exact(pdu: p.Pdu) -> None:
    """Re-encoding a decoded frame gives the same octets (unknown TLVs included)."""
    wire = encode(pdu)
    again = decode(wire)
    assert isinstance(again, p.Pdu)
    assert encode(again) == wire


@given(st.lists(pdus, max_size=6), st.lists(st.integers(0, 5000), max_size=8))
@FUZZ
def test_stream_of_valid_frames_in_any_chunking(frames: list[p.Pdu], cuts: list[int]) -> None:
    """Valid frames come out in order, whatever the chunking of the stream."""
    data = b"".join(encode(f) for f in frames)
    assert feed_in_chunks(data, cuts) == frames


@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=10))
@FUZZ
def test_random_bytes_never_raise_and_chunking_does_not_matter(
    data: bytes, cuts: list[int]
) -> None:
    """Random input never raises, and any chunking decodes as the whole does."""
    whole = PduDecoder().feed(data)
    assert feed_in_chunks(data, cuts) == whole
    assert_well_behaved(whole)


@st.composite
def mutated_frames(draw: st.DrawFn) -> list[bytes]:
    """Valid frames with body or header octets (not command_length) overwritten or cut."""
    frames = []
    for pdu in draw(st.lists(pdus, min_size=1, max_size=4)):
        wire = bytearray(encode(pdu))
        for _ in range(draw(st.integers(0, 4))):
            pos = draw(st.integers(4, len(wire) - 1))
            wire[pos] = draw(st.integers(0, 255))
        if len(wire) > 16 and draw(st.booleans()):
            # Shorten the body while keeping command_length consistent.
            cut = draw(st.integers(16, len(wire)))
            wire = wire[:cut]
            wire[0:4] = len(wire).to_bytes(4, "big")
        frames.append(bytes(wire))
    return frames


@given(mutated_frames(), st.lists(st.integers(0, 3000), max_size=8))
@FUZZ
def test_mutated_frames_never_raise(frames: list[bytes], cuts: list[int]) -> None:
    """Corrupted frames give PDUs or DecodeErrors, never an exception or a lost frame."""
    data = b"".join(frames)
    whole = PduDecoder().feed(data)
    assert len(whole) == len(frames)
    assert feed_in_chunks(data, cuts) == whole
    assert_well_behaved(whole)


@given(mutated_frames())
@FUZZ
def test_coalesced_frames_decode_like_separate_ones(frames: list[bytes]) -> None:
    """Frames arriving together decode exactly as each frame decoded on its own."""
    assert PduDecoder().feed(b"".join(frames)) == [decode(f) for f in frames]


@given(st.binary(min_size=1, max_size=200))
@FUZZ
def test_random_body_under_valid_header_for_every_command(body: bytes) -> None:
    """Any body under any known command_id decodes or yields an answerable error."""
    for command_id in p.PDU_CLASSES:
        wire = (16 + len(body)).to_bytes(4, "big") + command_id.to_bytes(4, "big")
        wire += b"\x00\x00\x00\x00\x00\x00\x00\x01" + body
        result = decode(wire)
        assert_well_behaved([result])
        if isinstance(result, p.Pdu):
            assert type(result) is p.PDU_CLASSES[command_id]
