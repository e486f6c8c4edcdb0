"""Media for bots: synthetic sources paced in real time, file playback, recording."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import math
import re
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer, MediaRecorder
from aiortc.mediastreams import MediaStreamError
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from .events import Event, RemoteTrack, SessionEnded, TrackAdded, TrackRemoved

__all__ = [
    "RecordingSink",
    "SyntheticAudioTrack",
    "SyntheticVideoTrack",
    "open_media_file",
]

logger = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
# A source this far behind its schedule (paused, starved) skips ahead rather
# than bursting frames to catch up.
MAX_LATENESS_S = 0.1


class _Pacer:
    """Schedules frames at a fixed period on the event loop's clock."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._origin: float | None = None
        self._next = 0.0

    async def wait(self) -> int:
        """Sleep until the next frame is due; return its index since the first frame."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._origin is None:
            self._origin = self._next = now
        delay = self._next - now
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -MAX_LATENESS_S:
            self._next = now
        index = round((self._next - self._origin) / self.period_s)
        self._next += self.period_s
        return index


class SyntheticVideoTrack(MediaStreamTrack):
    """A moving test pattern (scrolling colour bars and a bouncing square), in real time."""

    kind = "video"

    def __init__(self, width: int = 640, height: int = 360, fps: int = 30) -> None:
        super().__init__()
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise ValueError("width and height must be even and at least 16")
        self.width = width
        self.height = height
        self.fps = fps
        self.frames_sent = 0
        self._pacer = _Pacer(1 / fps)
        self._time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        # Eight vertical bars (white, yellow, cyan, green, magenta, red, blue, black) in BT.601 YUV.
        bars = [
            (235, 128, 128),
            (210, 16, 146),
            (170, 166, 16),
            (145, 54, 34),
            (106, 202, 222),
            (81, 90, 240),
            (41, 240, 110),
            (16, 128, 128),
        ]
        columns = np.arange(width) * len(bars) // width
        self._y = np.repeat(np.array([b[0] for b in bars], np.uint8)[columns][None, :], height, 0)
        half = columns[::2]
        self._u = np.repeat(np.array([b[1] for b in bars], np.uint8)[half][None, :], height // 2, 0)
        self._v = np.repeat(np.array([b[2] for b in bars], np.uint8)[half][None, :], height // 2, 0)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        index = await self._pacer.wait()
        shift = (index * 4) % self.width
        y = np.roll(self._y, shift, axis=1)
        u = np.roll(self._u, shift // 2, axis=1)
        v = np.roll(self._v, shift // 2, axis=1)
        side = self.height // 4
        x0 = int((self.width - side) * (0.5 + 0.5 * math.sin(index / 20)))
        y0 = int((self.height - side) * (0.5 + 0.5 * math.cos(index / 31)))
        y[y0 : y0 + side, x0 : x0 + side] = 235 - (index % 64)
        planes = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(
            self.height * 3 // 2, self.width
        )
        frame = VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = round(index * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = self._time_base
        self.frames_sent += 1
        return frame


class SyntheticAudioTrack(MediaStreamTrack):
    """A tone sweeping up and down between two pitches, in 20 ms frames, in real time."""

    kind = "audio"

    def __init__(
        self,
        sample_rate: int = 48_000,
        low_hz: float = 300.0,
        high_hz: float = 1200.0,
        sweep_s: float = 2.0,
        amplitude: float = 0.25,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.samples_per_frame = sample_rate // 50
        self.frames_sent = 0
        self._low = low_hz
        self._high = high_hz
        self._sweep_s = sweep_s
        self._amplitude = amplitude
        self._phase = 0.0
        self._pacer = _Pacer(self.samples_per_frame / sample_rate)
        self._time_base = fractions.Fraction(1, sample_rate)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        index = await self._pacer.wait()
        first = index * self.samples_per_frame
        t = (first + np.arange(self.samples_per_frame)) / self.sample_rate
        # Triangle sweep of the frequency; the phase runs on across frames, so no clicks.
        position = np.abs((t / self._sweep_s) % 2.0 - 1.0)
        frequency = self._low + (self._high - self._low) * position
        phase = self._phase + 2 * np.pi * np.cumsum(frequency) / self.sample_rate
        self._phase = float(phase[-1] % (2 * np.pi))
        samples = (self._amplitude * 32767 * np.sin(phase)).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = first
        frame.time_base = self._time_base
        self.frames_sent += 1
        return frame


def open_media_file(path: str | Path, loop: bool = True) -> MediaPlayer:
    """Open a media file to publish its ``audio``/``video`` tracks, looping by default."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no media file at {path}")
    return MediaPlayer(str(path), loop=loop)


class _FrameFeed(MediaStreamTrack):
    """A track fed frame by frame, so that a recorder can consume what a drain loop hands it."""

    def __init__(self, kind: str, max_queued: int = 300) -> None:
        super().__init__()
        self.kind = kind
        self.dropped = 0
        self._queue: asyncio.Queue[AudioFrame | VideoFrame | None] = asyncio.Queue(max_queued)

    def feed(self, frame: AudioFrame | VideoFrame | None) -> None:
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped += 1

    async def recv(self) -> AudioFrame | VideoFrame:
        frame = await self._queue.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        return frame


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "participant"


class RecordingSink:
    """Records each remote track into its own file under ``directory`` (Ogg/Opus, WebM/VP8)."""

    def __init__(self, directory: str | Path, names: dict[str, str] | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.files: list[Path] = []
        # participant id -> display name, for file names
        self.names = names if names is not None else {}
        self._feeds: dict[int, _FrameFeed] = {}
        self._recorders: dict[int, MediaRecorder] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def on_event(self, event: Event) -> None:
        """Start or stop a recording as tracks come and go (a `Participant` listener)."""
        if isinstance(event, TrackAdded):
            self._start(event.track)
        elif isinstance(event, TrackRemoved):
            self._stop(event.track)
        elif isinstance(event, SessionEnded):
            for key in list(self._feeds):
                self._feeds[key].feed(None)

    def on_frame(self, remote: RemoteTrack, frame: AudioFrame | VideoFrame) -> None:
        """Hand one decoded frame to its track's recorder (a `Participant` frame listener)."""
        feed = self._feeds.get(id(remote))
        if feed is not None:
            feed.feed(frame)

    def _start(self, remote: RemoteTrack) -> None:
        who = _safe_name(self.names.get(remote.participant_id, remote.participant_id))
        suffix = "ogg" if remote.kind == "audio" else "webm"
        path = self.directory / f"{who}-{remote.source}-{_safe_name(remote.mid)}.{suffix}"
        feed = _FrameFeed(remote.kind)
        recorder = MediaRecorder(str(path))
        recorder.addTrack(feed)
        self._feeds[id(remote)] = feed
        self._recorders[id(remote)] = recorder
        self.files.append(path)
        self._spawn(recorder.start())

    def _stop(self, remote: RemoteTrack) -> None:
        feed = self._feeds.pop(id(remote), None)
        recorder = self._recorders.pop(id(remote), None)
        if feed is not None:
            feed.feed(None)
        if recorder is not None:
            self._spawn(self._finish(recorder))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _finish(recorder: MediaRecorder) -> None:
        # Let the recorder take the frames still queued before it stops.
        await asyncio.sleep(0.2)
        try:
            await recorder.stop()
        except Exception as exc:  # an empty recording cannot be flushed; nothing to keep
            logger.warning("recording did not close cleanly: %s", exc)

    async def close(self) -> None:
        """Finish every recording; files stay playable."""
        for key in list(self._recorders):
            feed = self._feeds.pop(key)
            feed.feed(None)
            self._spawn(self._finish(self._recorders.pop(key)))
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 10)
