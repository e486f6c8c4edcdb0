"""Keyframe detection on real encoder output, and the upstream request limiter."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from sfu.keyframes import (
    KeyframeRequester,
    is_h264_keyframe_start,
    is_vp8_keyframe_start,
    keyframe_detector,
)


def frames(count: int) -> list[av.VideoFrame]:
    result = []
    for index in range(count):
        frame = av.VideoFrame(width=320, height=240, format="yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(index * 7) % 256]) * plane.buffer_size)
        frame.pts = index * 3000
        frame.time_base = Fraction(1, 90000)
        result.append(frame)
    return result


@pytest.mark.parametrize(
    ("encoder_type", "detect"),
    [(Vp8Encoder, is_vp8_keyframe_start), (H264Encoder, is_h264_keyframe_start)],
)
def test_only_the_first_packet_of_a_keyframe_is_a_keyframe_start(
    encoder_type: type, detect: object
) -> None:
    encoder = encoder_type()
    starts = []
    for index, frame in enumerate(frames(4)):
        payloads, _ = encoder.encode(frame, force_keyframe=index in (0, 3))
        starts.append([detect(p) for p in payloads])  # type: ignore[operator]
    assert starts[0][0] is True
    assert starts[3][0] is True
    assert not any(starts[1]) and not any(starts[2])
    assert not any(starts[0][1:]) or encoder_type is H264Encoder  # SPS/PPS come first


def test_detector_is_per_codec() -> None:
    assert keyframe_detector("VP8") is is_vp8_keyframe_start
    assert keyframe_detector("H264") is is_h264_keyframe_start
    assert keyframe_detector("opus") is None


def test_garbage_is_not_a_keyframe() -> None:
    assert not is_vp8_keyframe_start(b"")
    assert not is_vp8_keyframe_start(b"\x90")
    assert not is_h264_keyframe_start(b"\x1c")


async def test_requests_inside_the_interval_become_one_deferred_request() -> None:
    sent: list[float] = []
    loop = asyncio.get_running_loop()
    requester = KeyframeRequester(lambda: sent.append(loop.time()), interval_s=0.2)
    requester.request()
    for _ in range(10):
        requester.request()
    assert len(sent) == 1
    await asyncio.sleep(0.3)
    assert len(sent) == 2
    assert sent[1] - sent[0] >= 0.19
    requester.close()
