"""Real RTP payloads for recorder tests: aiortc's encoders and packetizers, real timing.

``opus_stream``, ``vp8_stream`` and ``h264_stream`` encode synthetic media (a
tone, a moving pattern) with the encoders aiortc uses to publish, and give the
RTP packets a publisher would send: sequence numbers and timestamps from a
chosen start (wrapping like real ones), marker bits, and arrival times.
``probe`` and ``decode_all`` check a written file with ffprobe and PyAV.
"""

from __future__ import annotations

import fractions
import functools
import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder

from tests.conftest import require_in_ci

T0 = 1_700_000_000.0  # the recording starts here (the session's clock)
VIDEO_FPS = 30


@dataclass(frozen=True)
class RtpPacket:
    sequence_number: int
    timestamp: int
    marker: bool
    payload: bytes
    arrival_s: float


@functools.cache
def _opus_payloads(seconds: float, freq: float, amplitude: int) -> tuple[bytes, ...]:
    encoder = OpusEncoder()
    payloads: list[bytes] = []
    for i in range(round(seconds * 50)):
        t = np.arange(960 * i, 960 * (i + 1)) / 48000
        samples = (np.sin(2 * np.pi * freq * t) * amplitude).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = 960 * i
        frame.time_base = fractions.Fraction(1, 48000)
        encoded, _ = encoder.encode(frame)
        payloads.extend(encoded)
    return tuple(payloads)


@functools.cache
def _texture(width: int, height: int) -> np.ndarray:
    # A still, blotchy background: keyframes span a few packets, as with a camera.
    coarse = np.random.default_rng(1).integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    return np.kron(coarse, np.ones((8, 8, 1), np.uint8))


def _pattern(i: int, width: int, height: int) -> av.VideoFrame:
    image = _texture(width, height).copy()
    image[:, : width // 4, 0] = (i * 7) % 255
    row = (i * 4) % (height - 16)
    image[row : row + 16, :, 1] = 220
    image[:, (i * 3) % (width - 16) :][:, :16, 2] = 180
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    frame.pts = i * (90000 // VIDEO_FPS)
    frame.time_base = fractions.Fraction(1, 90000)
    return frame


@functools.cache
def _video_payloads(
    codec: str, seconds: float, keyframe_every: int, width: int, height: int
) -> tuple[tuple[bytes, ...], ...]:
    encoder = Vp8Encoder() if codec == "vp8" else H264Encoder()
    frames = []
    for i in range(round(seconds * VIDEO_FPS)):
        payloads, _ = encoder.encode(
            _pattern(i, width, height), force_keyframe=i % keyframe_every == 0
        )
        frames.append(tuple(payloads))
    return tuple(frames)


def opus_stream(
    seconds: float,
    *,
    seq: int = 1000,
    ts: int = 5000,
    at: float = T0,
    freq: float = 440.0,
    amplitude: int = 8000,
) -> list[RtpPacket]:
    """Opus RTP packets of a tone, 20 ms each, arriving every 20 ms from ``at``."""
    return [
        RtpPacket((seq + i) % 65536, (ts + 960 * i) % 2**32, i == 0, payload, at + 0.02 * i)
        for i, payload in enumerate(_opus_payloads(seconds, freq, amplitude))
    ]


def _video_stream(
    codec: str,
    seconds: float,
    seq: int,
    ts: int,
    at: float,
    keyframe_every: int,
    size: tuple[int, int],
) -> list[RtpPacket]:
    packets = []
    step = 90000 // VIDEO_FPS
    n = 0
    for i, payloads in enumerate(_video_payloads(codec, seconds, keyframe_every, *size)):
        for j, payload in enumerate(payloads):
            packets.append(
                RtpPacket(
                    (seq + n) % 65536,
                    (ts + step * i) % 2**32,
                    j == len(payloads) - 1,
                    payload,
                    at + i / VIDEO_FPS + 0.0005 * j,
                )
            )
            n += 1
    return packets


def vp8_stream(
    seconds: float,
    *,
    seq: int = 20000,
    ts: int = 90000,
    at: float = T0,
    keyframe_every: int = VIDEO_FPS,
    size: tuple[int, int] = (320, 240),
) -> list[RtpPacket]:
    """VP8 RTP packets at 30 frames per second, a keyframe every ``keyframe_every`` frames."""
    return _video_stream("vp8", seconds, seq, ts, at, keyframe_every, size)


def h264_stream(
    seconds: float,
    *,
    seq: int = 30000,
    ts: int = 180000,
    at: float = T0,
    keyframe_every: int = VIDEO_FPS,
    size: tuple[int, int] = (320, 240),
) -> list[RtpPacket]:
    """H.264 RTP packets (STAP-A, FU-A, single NAL units as aiortc sends them)."""
    return _video_stream("h264", seconds, seq, ts, at, keyframe_every, size)


def shifted(packets: Iterable[RtpPacket], seconds: float) -> list[RtpPacket]:
    """The same packets arriving ``seconds`` later."""
    return [replace(p, arrival_s=p.arrival_s + seconds) for p in packets]


def feed(tap: Any, packets: Iterable[RtpPacket]) -> None:
    for p in packets:
        tap.packet(p.sequence_number, p.timestamp, p.marker, p.payload, p.arrival_s)


def ffprobe() -> str:
    path = shutil.which("ffprobe")
    if path is None:
        require_in_ci("ffprobe (Debian package ffmpeg) is not installed")
    assert path is not None
    return path


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's view of a file: format and streams (fails the test on an error)."""
    out = subprocess.run(
        [ffprobe(), "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stderr == "", out.stderr
    return dict(json.loads(out.stdout))


def count_frames(path: Path) -> tuple[int, str]:
    """Frames ffprobe decodes from the first stream, and what it complained about."""
    out = subprocess.run(
        [
            ffprobe(),
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(out.stdout)["streams"][0]["nb_read_frames"]), out.stderr


def decode_all(path: Path | Any) -> tuple[int, float, list[Any]]:
    """(frames, seconds of media, frames as arrays for audio) decoded with PyAV."""
    frames = 0
    end = 0.0
    pcm: list[Any] = []
    with av.open(path) as container:
        stream = container.streams[0]
        for frame in container.decode(stream):
            frames += 1
            if frame.pts is not None and frame.time_base is not None:
                duration = (
                    frame.samples / frame.sample_rate if isinstance(frame, av.AudioFrame) else 0.0
                )
                end = max(end, float(frame.pts * frame.time_base) + duration)
            if isinstance(frame, av.AudioFrame):
                pcm.append(frame.to_ndarray())
    return frames, end, pcm
