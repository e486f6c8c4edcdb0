"""The forwarding path: header rewriting, keyframe start, NACK answers from the cache."""

from __future__ import annotations

import asyncio
import struct

from sfu.forwarder import Downtrack, DowntrackParams, PacketCache, PublishedTrack
from sfu.metrics import MediaCounters
from sfu.rtp import IncomingPacket, parse_rtp

VP8_KEYFRAME_START = bytes([0x10, 0x00]) + b"key"  # S=1, PID=0; P bit 0 (key)
VP8_DELTA = bytes([0x10, 0x01]) + b"delta"  # S=1, PID=0; P bit 1 (inter frame)
VP8_CONTINUATION = bytes([0x00]) + b"more"  # S=0


class RecordingSink:
    """Stands where SRTP and the socket would be; keeps what was sent."""

    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []

    def send_rtp(self, packet: bytes) -> bool:
        self.rtp.append(packet)
        return True

    def send_rtcp(self, packet: bytes) -> bool:
        self.rtcp.append(packet)
        return True


def make_track(
    kind: str = "video", codec: str = "VP8", keyframe_interval_s: float = 1.0
) -> tuple[PublishedTrack, list[int]]:
    requests: list[int] = []
    track = PublishedTrack(
        track_id="alice:1",
        participant_id="alice",
        kind=kind,
        source="camera",
        codec_name=codec,
        codec_parameters={},
        media_ssrc=1111,
        cache_size=64,
        counters=MediaCounters(),
        send_keyframe_request=lambda: requests.append(1),
        keyframe_interval_s=keyframe_interval_s,
    )
    return track, requests


def incoming(seq: int, payload: bytes, *, ts: int = 9000, level: int = -1) -> IncomingPacket:
    return IncomingPacket(
        payload_type=96,
        marker=1,
        sequence_number=seq,
        timestamp=ts,
        ssrc=1111,
        payload=payload,
        audio_level=level,
    )


PARAMS = DowntrackParams(
    ssrc=2222,
    payload_type=100,
    mid="4",
    rtx_ssrc=3333,
    rtx_payload_type=101,
    mid_id=9,
    abs_send_time_id=3,
    audio_level_id=0,
)


def subscribe(track: PublishedTrack, params: DowntrackParams = PARAMS) -> RecordingSink:
    sink = RecordingSink()
    track.add_downtrack(Downtrack(track, params, sink, MediaCounters(), initial_sequence=500))
    return sink


async def test_video_subscriber_starts_at_a_keyframe_with_contiguous_sequence() -> None:
    track, requests = make_track()
    sink = subscribe(track)
    assert requests == [1]  # one keyframe request for the new subscriber
    track.forward(incoming(65534, VP8_DELTA))
    track.forward(incoming(65535, VP8_KEYFRAME_START))
    track.forward(incoming(0, VP8_CONTINUATION))
    track.forward(incoming(1, VP8_DELTA))
    sent = [parse_rtp(p, mid_id=9) for p in sink.rtp]
    assert [p.sequence_number for p in sent] == [500, 501, 502]
    assert [p.payload for p in sent] == [VP8_KEYFRAME_START, VP8_CONTINUATION, VP8_DELTA]
    assert {(p.ssrc, p.payload_type, p.timestamp, p.mid) for p in sent} == {(2222, 100, 9000, "4")}


async def test_only_copies_that_left_count_as_forwarded() -> None:
    track, _ = make_track()
    subscribe(track)
    counters = track._counters
    track.forward(incoming(1, VP8_DELTA))  # the subscriber waits for a keyframe
    assert counters.rtp_packets_forwarded == 0
    track.forward(incoming(2, VP8_KEYFRAME_START))
    assert (counters.rtp_packets_forwarded, counters.rtp_bytes_forwarded) == (
        1,
        len(VP8_KEYFRAME_START),
    )


async def test_packets_older_than_the_start_are_not_sent() -> None:
    track, _ = make_track()
    sink = subscribe(track)
    track.forward(incoming(10, VP8_KEYFRAME_START))
    track.forward(incoming(9, VP8_CONTINUATION))  # reordered, from before the start
    track.forward(incoming(12, VP8_DELTA))
    assert [parse_rtp(p).sequence_number for p in sink.rtp] == [500, 502]


async def test_audio_is_forwarded_from_the_first_packet_with_its_level() -> None:
    track, requests = make_track("audio", "opus")
    params = DowntrackParams(ssrc=5, payload_type=111, mid="0", mid_id=1, audio_level_id=2)
    sink = subscribe(track, params)
    track.forward(incoming(42, b"opus-frame", level=0x80 | 20))
    assert requests == []  # audio needs no keyframe
    sent = parse_rtp(sink.rtp[0], mid_id=1, audio_level_id=2)
    assert (sent.payload, sent.audio_level, sent.mid) == (b"opus-frame", 0x80 | 20, "0")


async def test_nack_is_answered_as_rtx_from_the_cache() -> None:
    track, _ = make_track()
    sink = subscribe(track)
    downtrack = track.downtracks[0]
    track.forward(incoming(100, VP8_KEYFRAME_START))
    track.forward(incoming(101, VP8_DELTA))
    assert downtrack.retransmit(501)
    rtx = parse_rtp(sink.rtp[-1])
    assert (rtx.ssrc, rtx.payload_type) == (3333, 101)
    assert struct.unpack("!H", rtx.payload[:2])[0] == 501  # RFC 4588 original seq
    assert rtx.payload[2:] == VP8_DELTA
    assert not downtrack.retransmit(400)  # never sent: nothing to answer with


async def test_nack_without_rtx_resends_the_original_packet() -> None:
    track, _ = make_track()
    params = DowntrackParams(ssrc=2222, payload_type=100, mid="4")
    sink = subscribe(track, params)
    track.forward(incoming(7, VP8_KEYFRAME_START))
    assert track.downtracks[0].retransmit(500)
    again = parse_rtp(sink.rtp[-1])
    assert (again.ssrc, again.sequence_number, again.payload) == (2222, 500, VP8_KEYFRAME_START)
    assert sink.rtp[-1][0] == 0x80  # no extensions negotiated, no extension block


async def test_removed_downtrack_gets_nothing_more() -> None:
    track, _ = make_track("audio", "opus")
    sink = subscribe(track, DowntrackParams(ssrc=5, payload_type=111, mid="0"))
    track.forward(incoming(1, b"a"))
    track.remove_downtrack(track.downtracks[0])
    track.forward(incoming(2, b"b"))
    assert len(sink.rtp) == 1


def test_packet_cache_returns_only_the_exact_sequence_number() -> None:
    cache = PacketCache(4)
    cache.put(incoming(1, b"x"))
    cache.put(incoming(5, b"y"))  # same slot as 1
    assert cache.get(1) is None
    assert cache.get(5) is not None and cache.get(5).payload == b"y"  # type: ignore[union-attr]


async def test_a_muted_track_resumes_at_a_keyframe_without_a_sequence_gap() -> None:
    track, requests = make_track(keyframe_interval_s=0.05)
    sink = subscribe(track)
    track.forward(incoming(10, VP8_KEYFRAME_START))
    track.forward(incoming(11, VP8_DELTA))
    track.set_muted(True)
    track.forward(incoming(12, VP8_DELTA))
    track.forward(incoming(13, VP8_KEYFRAME_START))
    assert len(sink.rtp) == 2  # nothing forwarded while muted
    track.set_muted(False)
    await asyncio.sleep(0.1)  # the limiter defers the second request to its interval's end
    assert len(requests) == 2  # one for the subscriber, one to resume
    track.forward(incoming(40, VP8_DELTA))  # not decodable: still waiting
    track.forward(incoming(41, VP8_KEYFRAME_START))
    track.forward(incoming(42, VP8_DELTA))
    assert [parse_rtp(p).sequence_number for p in sink.rtp] == [500, 501, 502, 503]
