"""Throughput of the SMPP codec: encode and decode of submit_sm and deliver_sm, in PDUs/s.

Run: ``.venv/bin/python bench/smpp_codec.py [--count N] [--rounds R]``. Decode is measured
the way a driver uses it: a PduDecoder fed 64 KiB chunks of coalesced frames (split frames
included), and also one frame per feed() call. Each figure is the best of R rounds.
"""

from __future__ import annotations

import argparse
import gc
import platform
import time
from collections.abc import Callable

from pigeon.smpp import tlv
from pigeon.smpp.codec import PduDecoder, encode
from pigeon.smpp.pdu import DeliverSm, Pdu, SubmitSm

SUBMIT = SubmitSm(
    sequence_number=1,
    source_addr_ton=5,
    source_addr="Pigeon",
    dest_addr_ton=1,
    dest_addr_npi=1,
    destination_addr="447700900123",
    registered_delivery=1,
    short_message=b"Your Pigeon verification code is 123456. It expires in 10 minutes.",
)
DELIVER = DeliverSm(
    sequence_number=1,
    source_addr_ton=1,
    source_addr_npi=1,
    source_addr="447700900123",
    dest_addr_ton=5,
    destination_addr="Pigeon",
    esm_class=0x04,
    short_message=(
        b"id:0a1b2c3d4e sub:001 dlvrd:001 submit date:2401311200 done date:2401311201"
        b" stat:DELIVRD err:000 text:Your Pigeon verif"
    ),
    tlvs=(tlv.RECEIPTED_MESSAGE_ID("0a1b2c3d4e"), tlv.MESSAGE_STATE(2)),
)


def best_rate(run: Callable[[], int], rounds: int) -> float:
    """Best items/second over ``rounds`` runs of ``run`` (which returns its item count)."""
    best = 0.0
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        count = run()
        elapsed = time.perf_counter() - start
        best = max(best, count / elapsed)
    return best


def bench(pdu: Pdu, count: int, rounds: int) -> dict[str, float]:
    """Encode, streaming decode and frame-at-a-time decode rates for one PDU shape."""
    frame = encode(pdu)
    stream = frame * count
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    pdus = [pdu] * count

    def run_encode() -> int:
        for item in pdus:
            encode(item)
        return count

    def run_stream() -> int:
        decoder = PduDecoder()
        decoded = 0
        for chunk in chunks:
            decoded += len(decoder.feed(chunk))
        assert decoded == count
        return decoded

    def run_frames() -> int:
        decoder = PduDecoder()
        feed = decoder.feed
        for _ in range(count):
            feed(frame)
        return count

    return {
        "frame octets": len(frame),
        "encode/s": best_rate(run_encode, rounds),
        "decode/s (64 KiB chunks)": best_rate(run_stream, rounds),
        "decode/s (1 frame per feed)": best_rate(run_frames, rounds),
    }


def main() -> None:
    """Print the figures for submit_sm and deliver_sm."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, best of {args.rounds}")
    for name, pdu in (("submit_sm", SUBMIT), ("deliver_sm (receipt)", DELIVER)):
        results = bench(pdu, args.count, args.rounds)
        print(f"{name}:")
        for label, value in results.items():
            print(f"  {label:<28} {value:>12,.0f}")


if __name__ == "__main__":
    main()
