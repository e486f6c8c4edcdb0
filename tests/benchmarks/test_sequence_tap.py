"""The load processes' RTP accounting on hand-built packets: wrap, duplicates, RTX repairs."""

from __future__ import annotations

import struct

from benchmarks.sequence_tap import ReceiveTap, SendTap, SequenceCounter, payload_offset

MEDIA_SSRC = 0x11111111
RTX_SSRC = 0x22222222


def rtp(sequence: int, timestamp: int, ssrc: int, payload: bytes = b"x" * 20,
        payload_type: int = 96, extension: bytes | None = None) -> bytes:
    first = 0x80 | (0x10 if extension is not None else 0)
    header = struct.pack("!BBHII", first, payload_type, sequence, timestamp, ssrc)
    if extension is not None:
        header += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    return header + payload


def test_counter_extends_sequence_numbers_across_the_wrap() -> None:
    counter = SequenceCounter(96, 65534, 0)
    for sequence in (65535, 0, 1):
        assert counter.add(sequence)
    assert counter.received == 4
    assert counter.extended_highest == 65536 + 1


def test_counter_counts_a_duplicate_once() -> None:
    counter = SequenceCounter(96, 10, 0)
    assert counter.add(11)
    assert not counter.add(11)
    assert counter.received == 2
    assert counter.duplicates == 1


def test_rtx_fills_a_gap_and_a_second_copy_does_not() -> None:
    tap = ReceiveTap(lambda ssrc: MEDIA_SSRC if ssrc == RTX_SSRC else None)
    for sequence in (100, 101, 103, 104):  # 102 lost
        tap.observe(rtp(sequence, 3000 * sequence, MEDIA_SSRC))
    (stream,) = tap.snapshot()
    assert stream.extended_highest - 100 + 1 - stream.received == 1
    # RFC 4588: the original sequence number leads the RTX payload (after an extension here).
    repair = rtp(7, 3000 * 102, RTX_SSRC, payload=struct.pack("!H", 102) + b"y" * 10,
                 payload_type=97, extension=b"\x10\xff\x00\x00")
    assert payload_offset(repair) == 12 + 8
    tap.observe(repair)
    tap.observe(repair)
    (stream,) = tap.snapshot()
    assert stream.received == 5
    assert stream.repaired == 1
    assert stream.rtx == 2
    assert stream.duplicates == 1
    assert [s.ssrc for s in tap.snapshot()] == [MEDIA_SSRC]


def test_receive_tap_ignores_rtcp_and_notes_sampled_frame_arrivals() -> None:
    tap = ReceiveTap()
    tap.observe(bytes([0x80, 200]) + bytes(26))  # a sender report
    assert tap.counters == {}
    for frame in range(400):
        for part in range(3):  # three packets per frame, one timestamp
            tap.observe(rtp(3 * frame + part, 1_000_000 + 3000 * frame, MEDIA_SSRC))
    arrivals = tap.take_arrivals()
    # One frame in four is timed (by timestamp), once per frame.
    assert 60 <= len(arrivals) <= 140
    assert len({ts for ts, _ in arrivals}) == len(arrivals)
    assert tap.take_arrivals() == []
    assert tap.first_packet_at is not None


def test_send_tap_counts_media_and_rtx_apart_and_times_each_frame_once() -> None:
    tap = SendTap(lambda ssrc: ssrc == RTX_SSRC)
    for sequence in range(6):
        tap.observe(rtp(sequence, 90_000 + 3000 * (sequence // 2), MEDIA_SSRC))
    tap.observe(rtp(0, 90_000, RTX_SSRC, payload_type=97))
    assert tap.sent == {MEDIA_SSRC: 6}
    assert tap.rtx_sent == 1
    assert sorted(tap.take_departures()) == [90_000, 93_000, 96_000]
