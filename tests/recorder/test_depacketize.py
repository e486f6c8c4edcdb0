"""RTP payloads back into frames: reordering, VP8/H.264/Opus reassembly, loss, garbage."""

from __future__ import annotations

import random

import pytest
from aiortc.codecs.h264 import h264_depayload
from aiortc.codecs.vpx import vp8_depayload

from recorder.depacketize import (
    DepacketizerStats,
    EncodedFrame,
    H264Depacketizer,
    OpusDepacketizer,
    ReorderBuffer,
    Vp8Depacketizer,
    depacketizer_for,
    h264_nal_types,
    opus_packet_samples,
    parse_vp8_descriptor,
    vp8_frame_info,
)
from recorder.errors import MalformedPayload
from tests.recorder.rtp_media import RtpPacket, h264_stream, opus_stream, vp8_stream

# -- reordering ------------------------------------------------------------------


def reorder(
    window: int = 4,
) -> tuple[ReorderBuffer[int], list[tuple[int, bool]], DepacketizerStats]:
    out: list[tuple[int, bool]] = []
    stats = DepacketizerStats()
    buffer: ReorderBuffer[int] = ReorderBuffer(window, lambda p, gap: out.append((p, gap)), stats)
    return buffer, out, stats


def test_in_order_packets_pass_straight_through() -> None:
    buffer, out, stats = reorder()
    for seq in range(10, 15):
        buffer.push(seq, seq)
    assert out == [(s, False) for s in range(10, 15)]
    assert stats.packets_lost == 0


def test_swapped_packets_come_out_in_sequence_order() -> None:
    buffer, out, _ = reorder()
    for seq in (1, 3, 2, 5, 4, 6):
        buffer.push(seq, seq)
    assert [p for p, _ in out] == [1, 2, 3, 4, 5, 6]
    assert not any(gap for _, gap in out)


def test_a_missing_packet_is_given_up_after_the_window_and_marks_a_gap() -> None:
    buffer, out, stats = reorder(window=4)
    for seq in (1, 2, 4, 5, 6):
        buffer.push(seq, seq)
    assert [p for p, _ in out] == [1, 2]  # 3 may still come
    buffer.push(7, 7)  # 4 packets past the hole: give up on 3
    assert out[2:] == [(4, True), (5, False), (6, False), (7, False)]
    assert stats.packets_lost == 1


def test_a_retransmission_within_the_window_fills_the_hole() -> None:
    buffer, out, stats = reorder(window=4)
    for seq in (1, 2, 4, 5, 3):
        buffer.push(seq, seq)
    assert out == [(s, False) for s in range(1, 6)]
    assert stats.packets_lost == 0


def test_late_and_duplicate_packets_are_counted_and_dropped() -> None:
    buffer, out, stats = reorder(window=2)
    for seq in (1, 3, 4, 5, 2, 5):
        buffer.push(seq, seq)
    assert [p for p, _ in out] == [1, 3, 4, 5]
    assert stats.packets_lost == 1
    assert stats.packets_late == 2


def test_sequence_numbers_wrap() -> None:
    buffer, out, stats = reorder()
    for seq in (65534, 0, 65535, 1):
        buffer.push(seq, seq)
    assert [p for p, _ in out] == [65534, 65535, 0, 1]
    assert stats.packets_lost == 0


def test_a_big_jump_restarts_instead_of_waiting() -> None:
    buffer, out, stats = reorder(window=100)
    buffer.push(10, 10)
    buffer.push(30000, 30000)
    assert out == [(10, False), (30000, True)]
    assert stats.packets_lost == 0


def test_flush_delivers_what_is_held() -> None:
    buffer, out, stats = reorder(window=10)
    for seq in (1, 3, 4):
        buffer.push(seq, seq)
    buffer.flush()
    assert out == [(1, False), (3, True), (4, False)]
    assert stats.packets_lost == 1


# -- Opus ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "samples"),
    [
        (bytes([0xF8, 0xFF, 0xFE]), 960),  # CELT FB 20 ms, code 0
        (bytes([0x78, 1, 2, 3]), 960),  # config 15: Hybrid FB 20 ms
        (bytes([(1 << 3) | 0, 0]), 960),  # SILK NB 20 ms
        (bytes([(0 << 3) | 1, 7, 7]), 960),  # two 10 ms frames, code 1
        (bytes([(17 << 3) | 3, 0x03, 1, 2, 3]), 720),  # three 5 ms CELT frames, code 3
        (bytes([(3 << 3) | 2, 1, 9, 9]), 5760),  # two 60 ms frames, code 2
    ],
)
def test_opus_packet_duration_comes_from_the_toc(payload: bytes, samples: int) -> None:
    assert opus_packet_samples(payload) == samples


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "Opus packet is empty"),
        (bytes([0x01, 1]), "Opus code 1 packet has an odd payload length"),
        (bytes([0x02]), "Opus code 2 packet is missing its frame length"),
        (bytes([0x02, 200, 1]), "Opus code 2 frame length exceeds the packet"),
        (bytes([0x03]), "Opus code 3 packet is missing its frame count"),
        (bytes([0x03, 0x00]), "Opus code 3 packet has no frames"),
        (bytes([(3 << 3) | 3, 0x03]), "Opus packet is longer than 120 ms"),
    ],
)
def test_malformed_opus_packets_name_the_rule(payload: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        opus_packet_samples(payload)
    assert str(caught.value) == message


def test_opus_packets_become_frames_and_garbage_is_counted() -> None:
    frames: list[EncodedFrame] = []
    stats = DepacketizerStats()
    depacketizer = OpusDepacketizer(frames.append, stats)
    packets = opus_stream(0.2)
    for p in packets:
        depacketizer.push(p.timestamp, p.marker, p.payload, p.arrival_s, False)
    depacketizer.push(0, False, bytes([0x03, 0x00]), 0.0, False)
    assert [f.data for f in frames] == [p.payload for p in packets]
    assert all(f.samples == 960 for f in frames)
    assert stats.frames == 10
    assert stats.packets_malformed == 1


# -- VP8 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "parsed"),
    [
        (bytes([0x10, 0xAA]), (True, 0, 1)),
        (bytes([0x03, 0xAA]), (False, 3, 1)),
        (bytes([0x90, 0x80, 0x05, 0xAA]), (True, 0, 3)),  # I, 7-bit PictureID
        (bytes([0x90, 0x80, 0x85, 0x01, 0xAA]), (True, 0, 4)),  # I, 15-bit PictureID
        (bytes([0x90, 0xF0, 0x85, 0x01, 0x07, 0x20, 0xAA]), (True, 0, 6)),  # I, L, T, K
    ],
)
def test_vp8_payload_descriptor(payload: bytes, parsed: tuple[bool, int, int]) -> None:
    assert parse_vp8_descriptor(payload) == parsed


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "VP8 payload is empty"),
        (bytes([0x90]), "VP8 descriptor has truncated extension bits"),
        (bytes([0x90, 0x80]), "VP8 descriptor has truncated PictureID"),
        (bytes([0x10]), "VP8 payload has no data after its descriptor"),
        (bytes([0x90, 0x80, 0x85, 0x01]), "VP8 payload has no data after its descriptor"),
    ],
)
def test_malformed_vp8_descriptors_name_the_rule(payload: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        parse_vp8_descriptor(payload)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"\x00\x00", "VP8 frame is shorter than its frame tag"),
        (bytes([0x0E, 0, 0, 0]), "VP8 frame has an unknown version"),
        (bytes([0xF1, 0xFF, 0x00, 0, 0]), "VP8 first partition is longer than the frame"),
        (bytes([0x00, 0, 0]) + bytes(7), "VP8 keyframe has no start code"),
        (bytes([0x00, 0, 0, 0x9D, 0x01, 0x2A, 0, 0, 0, 0]), "VP8 keyframe has a zero dimension"),
    ],
)
def test_malformed_vp8_frames_name_the_rule(frame: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        vp8_frame_info(frame)
    assert str(caught.value) == message


def vp8_frames(
    packets: list[RtpPacket], gaps: set[int] | None = None
) -> tuple[list[EncodedFrame], DepacketizerStats]:
    frames: list[EncodedFrame] = []
    stats = DepacketizerStats()
    depacketizer = Vp8Depacketizer(frames.append, stats)
    for i, p in enumerate(packets):
        depacketizer.push(p.timestamp, p.marker, p.payload, p.arrival_s, i in (gaps or set()))
    depacketizer.flush()
    return frames, stats


def encoder_frames(packets: list[RtpPacket], depayload: object) -> dict[int, bytes]:
    by_ts: dict[int, bytes] = {}
    for p in packets:
        by_ts[p.timestamp] = by_ts.get(p.timestamp, b"") + depayload(p.payload)  # type: ignore[operator]
    return by_ts


def test_vp8_frames_are_the_encoders_frames() -> None:
    packets = vp8_stream(1.0, size=(640, 480))
    assert len(packets) > 30  # keyframes span several packets
    frames, stats = vp8_frames(packets)
    expected = encoder_frames(packets, vp8_depayload)
    assert [f.timestamp for f in frames] == sorted(expected)
    assert all(f.data == expected[f.timestamp] for f in frames)
    assert frames[0].keyframe and not frames[1].keyframe
    assert vp8_frame_info(frames[0].data) == (True, 640, 480)
    assert stats.frames == 30 and stats.frames_dropped == 0


def test_vp8_after_loss_waits_for_the_next_keyframe() -> None:
    packets = vp8_stream(2.5, keyframe_every=30)
    start = packets[0].timestamp
    frame_10 = [i for i, p in enumerate(packets) if p.timestamp == start + 3000 * 10]
    keyframe_30 = [i for i, p in enumerate(packets) if p.timestamp == start + 3000 * 30]
    assert len(frame_10) == 2 and len(keyframe_30) > 2
    lost = {frame_10[0], keyframe_30[1]}
    kept = [p for i, p in enumerate(packets) if i not in lost]
    gaps = {frame_10[0], keyframe_30[1] - 1}  # indexes in ``kept``
    frames, stats = vp8_frames(kept, gaps=gaps)
    timestamps = [f.timestamp for f in frames]
    # 0-9 whole; 10 lost its first packet; 11-29 undecodable; the keyframe 30
    # lost a packet; 31-59 undecodable; from the keyframe 60 on, whole again.
    assert timestamps == [start + 3000 * i for i in [*range(10), *range(60, 75)]]
    assert frames[10].keyframe
    assert stats.frames_dropped == 1 + 19 + 1 + 29


def test_vp8_frame_missing_its_first_packet_is_dropped() -> None:
    packets = vp8_stream(0.2, size=(640, 480))
    first_frame = [p for p in packets if p.timestamp == packets[0].timestamp]
    assert len(first_frame) > 1
    frames, stats = vp8_frames(packets[1:])  # the tap began mid-keyframe
    assert frames == []  # no keyframe: nothing a decoder could use
    assert stats.frames_dropped == 6


def test_vp8_frame_without_marker_ends_where_the_next_timestamp_begins() -> None:
    packets = vp8_stream(0.2)
    unmarked = [
        RtpPacket(p.sequence_number, p.timestamp, False, p.payload, p.arrival_s) for p in packets
    ]
    frames, _ = vp8_frames(unmarked)
    assert len(frames) == 5  # the last one has no end: dropped at flush


def test_vp8_garbage_is_dropped_and_counted_never_raised() -> None:
    rng = random.Random(7)
    frames: list[EncodedFrame] = []
    stats = DepacketizerStats()
    depacketizer = Vp8Depacketizer(frames.append, stats)
    for i in range(2000):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        depacketizer.push(i // 3, rng.random() < 0.3, payload, 0.0, rng.random() < 0.1)
    depacketizer.flush()
    assert stats.packets_malformed > 100
    assert all(vp8_frame_info(f.data)[0] or not f.keyframe for f in frames)


# -- H.264 -----------------------------------------------------------------------


def h264_frames(packets: list[RtpPacket]) -> tuple[list[EncodedFrame], DepacketizerStats]:
    frames: list[EncodedFrame] = []
    stats = DepacketizerStats()
    depacketizer = H264Depacketizer(frames.append, stats)
    for p in packets:
        depacketizer.push(p.timestamp, p.marker, p.payload, p.arrival_s, False)
    return frames, stats


def test_h264_access_units_are_the_encoders_nal_units() -> None:
    packets = h264_stream(1.0, size=(640, 480))
    frames, stats = h264_frames(packets)
    expected = encoder_frames(packets, h264_depayload)
    assert len(frames) == 30 and stats.frames_dropped == 0
    assert all(f.data == expected[f.timestamp] for f in frames)
    assert frames[0].keyframe
    assert {7, 8, 5} <= set(h264_nal_types(frames[0].data))


def test_h264_fu_a_reassembles_a_nal_unit() -> None:
    nal = bytes([0x65]) + bytes(range(200))
    fragments = [
        bytes([0x7C, 0x85]) + nal[1:80],
        bytes([0x7C, 0x05]) + nal[80:150],
        bytes([0x7C, 0x45]) + nal[150:],
    ]
    sps, pps = bytes([0x67, 1, 2, 3]), bytes([0x68, 4, 5])
    stap = bytes([0x78]) + len(sps).to_bytes(2, "big") + sps + len(pps).to_bytes(2, "big") + pps
    packets = [RtpPacket(i, 9000, i == 3, p, 0.0) for i, p in enumerate([stap, *fragments])]
    frames, _ = h264_frames(packets)
    assert frames[0].data == b"".join(b"\x00\x00\x00\x01" + n for n in (sps, pps, nal))
    assert frames[0].keyframe


def test_h264_idr_without_parameter_sets_gets_the_last_ones() -> None:
    sps, pps, idr = bytes([0x67, 1, 2]), bytes([0x68, 3]), bytes([0x65, 9, 9])
    packets = [
        RtpPacket(1, 0, False, sps, 0.0),
        RtpPacket(2, 0, False, pps, 0.0),
        RtpPacket(3, 0, True, idr, 0.0),
        RtpPacket(4, 3000, True, idr, 0.0),
    ]
    frames, _ = h264_frames(packets)
    assert frames[1].data == frames[0].data
    assert frames[1].keyframe


@pytest.mark.parametrize(
    "payload",
    [
        bytes([0x7C, 0x05, 1, 2]),  # FU-A middle with no start
        bytes([0x78, 0x00, 0x09, 0x65]),  # STAP-A with a truncated NAL unit
        bytes([0x79, 0x00]),  # STAP-B: not in packetization mode 1
        bytes([0x65]),  # shorter than 2 bytes
    ],
)
def test_malformed_h264_payloads_are_dropped_and_counted(payload: bytes) -> None:
    packets = [RtpPacket(1, 0, False, bytes([0x67, 1]), 0.0), RtpPacket(2, 0, True, payload, 0.0)]
    frames, stats = h264_frames(packets)
    assert frames == []
    assert stats.packets_malformed == 1


def test_h264_fu_a_without_its_end_drops_the_frame() -> None:
    packets = [
        RtpPacket(1, 0, False, bytes([0x67, 1]), 0.0),
        RtpPacket(2, 0, True, bytes([0x7C, 0x85, 1, 2]), 0.0),
    ]
    frames, stats = h264_frames(packets)
    assert frames == [] and stats.frames_dropped == 1


def test_unknown_codecs_have_no_depacketizer() -> None:
    stats = DepacketizerStats()
    assert depacketizer_for("PCMU", lambda f: None, stats) is None
    assert isinstance(depacketizer_for("VP8", lambda f: None, stats), Vp8Depacketizer)
    assert isinstance(depacketizer_for("h264", lambda f: None, stats), H264Depacketizer)
