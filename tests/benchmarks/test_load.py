"""The load process's deterministic loss: 1 packet in P, and every retransmission of it."""

from __future__ import annotations

import struct

from benchmarks.load import Instruments

MEDIA_SSRC = 0x01020304
RTX_SSRC = 0x0A0B0C0D


def rtp(sequence: int, ssrc: int, payload: bytes = b"v" * 20, payload_type: int = 96) -> bytes:
    return struct.pack("!BBHII", 0x80, payload_type, sequence, 90_000, ssrc) + payload


def test_drops_one_packet_in_p_and_its_retransmissions() -> None:
    instruments = Instruments(drop_period=20)
    instruments.send_tap.is_rtx = lambda ssrc: ssrc == RTX_SSRC
    dropped = [s for s in range(1000) if instruments.drops(rtp(s, MEDIA_SSRC))]
    assert dropped == list(range(10, 1000, 20))
    # RFC 4588: the original sequence number leads the RTX payload.
    assert instruments.drops(rtp(1, RTX_SSRC, struct.pack("!H", 30) + b"v" * 20, 97))
    assert not instruments.drops(rtp(30, RTX_SSRC, struct.pack("!H", 31) + b"v" * 20, 97))
    assert not instruments.drops(bytes([0x80, 201]) + bytes(30))  # RTCP is never dropped


def test_without_a_period_nothing_is_dropped() -> None:
    instruments = Instruments(drop_period=None)
    assert not any(instruments.drops(rtp(s, MEDIA_SSRC)) for s in range(100))
