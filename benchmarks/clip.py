"""A pre-encoded VP8 + Opus clip, and tracks that publish it in real time without encoding.

The load must be cheap and steady, so the clip is encoded once, before any
measurement, with aiortc's own encoders (the settings a real aiortc publisher
would use: ``Vp8Encoder`` in CBR at the target bitrate, ``OpusEncoder`` in 20 ms
frames). `EncodedVideoTrack` and `EncodedAudioTrack` hand the encoded frames to
aiortc as ``av.Packet``s, which ``RTCRtpSender`` only packetizes
(``RTCRtpSender._next_encoded_frame``: a packet is packed, a frame would be
encoded). The clip loops, timestamps running on.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload
from aiortc.mediastreams import MediaStreamError
from av.audio.frame import AudioFrame
from av.packet import Packet
from av.video.frame import VideoFrame

__all__ = [
    "ClipSettings",
    "EncodedAudioTrack",
    "EncodedClip",
    "EncodedVideoTrack",
    "encode_clip",
    "load_clip",
    "save_clip",
]

VIDEO_CLOCK_RATE = 90_000
AUDIO_CLOCK_RATE = 48_000
AUDIO_FRAME_SAMPLES = 960  # 20 ms at 48 kHz
# A track this far behind its schedule (the process was starved) skips ahead
# instead of bursting frames to catch up.
MAX_LATENESS_S = 0.1

_MAGIC = b"THCLIP1\n"
_HEADER = struct.Struct("!IIIIII")  # fps, width, height, bitrate, frames, audio frames
_RECORD = struct.Struct("!BI")  # keyframe flag, length


@dataclass(frozen=True)
class ClipSettings:
    """What to encode: a moving 640x360 pattern at 30 fps, ~1 Mbps, a keyframe every 2 s."""

    seconds: float = 10.0
    width: int = 640
    height: int = 360
    fps: int = 30
    video_bitrate: int = 1_000_000
    keyframe_interval_s: float = 2.0
    tone_hz: float = 440.0


@dataclass
class EncodedClip:
    """Encoded VP8 frames (with keyframe flags) and Opus frames of 20 ms each."""

    fps: int
    width: int
    height: int
    video_bitrate: int
    video: list[bytes] = field(default_factory=list)
    keyframes: list[bool] = field(default_factory=list)
    audio: list[bytes] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.video) / self.fps

    @property
    def measured_video_bitrate(self) -> float:
        """Bits per second of the encoded VP8 frames, averaged over the clip."""
        return 8 * sum(len(frame) for frame in self.video) / max(self.seconds, 1e-9)


class _Pattern:
    """Scrolling colour gradients and a bouncing square: VP8 at ~1 Mbps CBR fills its budget."""

    def __init__(self, width: int, height: int) -> None:
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise ValueError("width and height must be even and at least 16")
        self.width = width
        self.height = height
        x = np.arange(width)[None, :]
        y = np.arange(height)[:, None]
        self._y = ((x * 3 + y * 2) % 220 + 16).astype(np.uint8)
        self._u = (((x[:, ::2] + y[::2, :]) % 200) + 28).astype(np.uint8)
        self._v = (((x[:, ::2] * 2 - y[::2, :]) % 200) + 28).astype(np.uint8)

    def frame(self, index: int) -> VideoFrame:
        shift = (index * 6) % self.width
        y = np.roll(self._y, shift, axis=1)
        u = np.roll(self._u, shift // 2, axis=1)
        v = np.roll(self._v, index % (self.width // 2), axis=1)
        side = self.height // 4
        x0 = int((self.width - side) * (0.5 + 0.5 * math.sin(index / 20)))
        y0 = int((self.height - side) * (0.5 + 0.5 * math.cos(index / 31)))
        y[y0 : y0 + side, x0 : x0 + side] = 235 - (index % 64)
        planes = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
        return VideoFrame.from_ndarray(
            planes.reshape(self.height * 3 // 2, self.width), format="yuv420p"
        )


def _encode_video(settings: ClipSettings, clip: EncodedClip) -> None:
    encoder = Vp8Encoder()
    encoder.target_bitrate = settings.video_bitrate
    pattern = _Pattern(settings.width, settings.height)
    keyframe_every = max(1, round(settings.keyframe_interval_s * settings.fps))
    time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
    for index in range(round(settings.seconds * settings.fps)):
        frame = pattern.frame(index)
        frame.pts = round(index * VIDEO_CLOCK_RATE / settings.fps)
        frame.time_base = time_base
        keyframe = index % keyframe_every == 0
        payloads, _timestamp = encoder.encode(frame, force_keyframe=keyframe)
        # aiortc's encoder returns RTP payloads; take the VP8 bitstream back out of them.
        clip.video.append(b"".join(vp8_depayload(p) for p in payloads))
        clip.keyframes.append(keyframe)


def _encode_audio(settings: ClipSettings, clip: EncodedClip) -> None:
    encoder = OpusEncoder()
    time_base = fractions.Fraction(1, AUDIO_CLOCK_RATE)
    wanted = round(settings.seconds * AUDIO_CLOCK_RATE / AUDIO_FRAME_SAMPLES)
    # The encoder buffers a little at first: feed frames until enough packets came out.
    for index in range(wanted + 50):
        if len(clip.audio) >= wanted:
            break
        t = (index * AUDIO_FRAME_SAMPLES + np.arange(AUDIO_FRAME_SAMPLES)) / AUDIO_CLOCK_RATE
        samples = (0.25 * 32767 * np.sin(2 * np.pi * settings.tone_hz * t)).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_CLOCK_RATE
        frame.pts = index * AUDIO_FRAME_SAMPLES
        frame.time_base = time_base
        payloads, _timestamp = encoder.encode(frame)
        clip.audio.extend(payloads)
    del clip.audio[wanted:]


def encode_clip(settings: ClipSettings) -> EncodedClip:
    """Encode the clip once (a few seconds of CPU); nothing is encoded after this."""
    if settings.seconds < settings.keyframe_interval_s:
        raise ValueError("the clip must be at least one keyframe interval long")
    clip = EncodedClip(settings.fps, settings.width, settings.height, settings.video_bitrate)
    _encode_video(settings, clip)
    _encode_audio(settings, clip)
    return clip


def save_clip(clip: EncodedClip, path: Path) -> None:
    """Write the clip in a small length-prefixed format (`load_clip` reads it)."""
    parts = [
        _MAGIC,
        _HEADER.pack(
            clip.fps, clip.width, clip.height, clip.video_bitrate, len(clip.video), len(clip.audio)
        ),
    ]
    for data, keyframe in zip(clip.video, clip.keyframes, strict=True):
        parts += [_RECORD.pack(int(keyframe), len(data)), data]
    for data in clip.audio:
        parts += [_RECORD.pack(0, len(data)), data]
    path.write_bytes(b"".join(parts))


def load_clip(path: Path) -> EncodedClip:
    """Read a clip written by `save_clip`; raise ValueError if the file is not one."""
    data = path.read_bytes()
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + _HEADER.size:
        raise ValueError(f"{path} is not an encoded clip")
    offset = len(_MAGIC)
    fps, width, height, bitrate, frames, audio_frames = _HEADER.unpack_from(data, offset)
    offset += _HEADER.size
    clip = EncodedClip(fps, width, height, bitrate)
    for index in range(frames + audio_frames):
        if offset + _RECORD.size > len(data):
            raise ValueError(f"{path} is truncated")
        keyframe, length = _RECORD.unpack_from(data, offset)
        offset += _RECORD.size
        payload = data[offset : offset + length]
        if len(payload) != length:
            raise ValueError(f"{path} is truncated")
        offset += length
        if index < frames:
            clip.video.append(payload)
            clip.keyframes.append(bool(keyframe))
        else:
            clip.audio.append(payload)
    if not clip.video or not clip.audio or not clip.keyframes[0]:
        raise ValueError(f"{path} has no video, no audio or does not start with a keyframe")
    return clip


class _Schedule:
    """Frame ``i`` is due at ``origin + i * period`` on the event loop's clock."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._origin: float | None = None
        self._index = 0

    async def next_index(self) -> int:
        """Sleep until the next frame is due; return its index since the first one."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._origin is None:
            self._origin = now
        due = self._origin + self._index * self.period_s
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > MAX_LATENESS_S:
            # Starved: skip the frames that are too late rather than burst them.
            self._index = math.ceil((now - self._origin) / self.period_s)
        index = self._index
        self._index += 1
        return index


class _EncodedTrack(MediaStreamTrack):
    """Hands out encoded frames of a looping clip as ``av.Packet``s, paced in real time."""

    def __init__(self, frames: list[bytes], period_s: float, ticks_per_frame: int, rate: int):
        super().__init__()
        if not frames:
            raise ValueError("no frames to publish")
        self._frames = frames
        self._schedule = _Schedule(period_s)
        self._ticks_per_frame = ticks_per_frame
        self._time_base = fractions.Fraction(1, rate)
        self.frames_sent = 0

    async def recv(self) -> Packet:
        if self.readyState != "live":
            raise MediaStreamError
        index = await self._schedule.next_index()
        packet = Packet(self._frames[index % len(self._frames)])
        packet.pts = index * self._ticks_per_frame
        packet.time_base = self._time_base
        self.frames_sent += 1
        return packet


class EncodedVideoTrack(_EncodedTrack):
    """The clip's VP8 frames at its frame rate; it loops on a keyframe."""

    kind = "video"

    def __init__(self, clip: EncodedClip) -> None:
        if VIDEO_CLOCK_RATE % clip.fps:
            raise ValueError(f"{clip.fps} fps does not divide the 90 kHz clock")
        super().__init__(
            clip.video, 1 / clip.fps, VIDEO_CLOCK_RATE // clip.fps, VIDEO_CLOCK_RATE
        )


class EncodedAudioTrack(_EncodedTrack):
    """The clip's Opus frames, one every 20 ms."""

    kind = "audio"

    def __init__(self, clip: EncodedClip) -> None:
        super().__init__(
            clip.audio,
            AUDIO_FRAME_SAMPLES / AUDIO_CLOCK_RATE,
            AUDIO_FRAME_SAMPLES,
            AUDIO_CLOCK_RATE,
        )
