"""One track's container file, written with PyAV by remuxing: no decoding, no encoding.

Opus goes into Ogg (or Matroska audio), VP8 into WebM (or Matroska), H.264 into
fragmented MP4 (or Matroska). Packets carry the track's own timeline (RTP clock
units, starting at 0) as pts = dts; the muxer rescales. A video frame's
duration is only known when the next frame arrives, so one frame is held back;
the last frame gets the duration of the one before it.

PyAV writes through a Python file object (:class:`GuardedFile`) so that a
failing write (ENOSPC, EIO) is seen here, whatever the muxer does with the
error code: it becomes :class:`RecordingWriteError`. The muxers are set up to
leave a readable file when cut short: Matroska clusters of at most one second,
fragmented MP4 (a fragment per second), Ogg pages.
"""

from __future__ import annotations

import errno
import io
import os
import struct
from dataclasses import dataclass
from fractions import Fraction

import av
import av.container
import av.stream
import numpy as np

from .depacketize import EncodedFrame, vp8_frame_info
from .errors import MalformedPayload, RecordingWriteError
from .storage import WritableFile

__all__ = [
    "Container",
    "GuardedFile",
    "TrackWriter",
    "container_for",
    "opus_silence_frame",
    "IO_BUFFER_BYTES",
    "OPUS_SILENCE_SAMPLES",
]

OPUS_SILENCE_SAMPLES = 960  # the silence frame is 20 ms
# PyAV's write buffer: small, so that little is in flight when a disk fills up.
IO_BUFFER_BYTES = 8192
_DEFAULT_VIDEO_FRAME = 3000  # 1/30 s at 90 kHz: the last frame's duration when alone


@dataclass(frozen=True)
class Container:
    """How one codec is stored: the FFmpeg muxer, the file extension, muxer options."""

    muxer: str
    extension: str
    options: tuple[tuple[str, str], ...] = ()


_MATROSKA_OPTIONS = (("cluster_time_limit", "1000"), ("cluster_size_limit", str(512 * 1024)))
_CONTAINERS: dict[tuple[str, str], Container] = {
    ("webm", "opus"): Container("ogg", "ogg"),
    ("webm", "vp8"): Container("webm", "webm", _MATROSKA_OPTIONS),
    ("webm", "h264"): Container(
        "mp4",
        "mp4",
        (("movflags", "empty_moov+default_base_moof"), ("frag_duration", "1000000")),
    ),
    ("mkv", "opus"): Container("matroska", "mka", _MATROSKA_OPTIONS),
    ("mkv", "vp8"): Container("matroska", "mkv", _MATROSKA_OPTIONS),
    ("mkv", "h264"): Container("matroska", "mkv", _MATROSKA_OPTIONS),
}


def container_for(fmt: str, codec: str) -> Container | None:
    """Where a codec ("opus", "VP8", "H264") goes for a recording format, or None."""
    return _CONTAINERS.get((fmt, codec.lower()))


def describe_os_error(exc: OSError) -> str:
    """A short reason for a failed write, such as "disk full (ENOSPC)"."""
    code = errno.errorcode.get(exc.errno or 0, "")
    if exc.errno == errno.ENOSPC:
        return "disk full (ENOSPC)"
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"{text} ({code})" if code else text


class GuardedFile:
    """The file a muxer writes to; remembers the first failure so it cannot go unseen."""

    def __init__(self, file: WritableFile) -> None:
        self._file = file
        self.error: OSError | None = None
        self.closed = False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        if self.error is not None:
            raise self.error
        try:
            return self._file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._file.seek(offset, whence)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._file.close()
        except OSError as exc:
            self.error = self.error or exc

    def check(self) -> None:
        """Raise RecordingWriteError if any write failed."""
        if self.error is not None:
            raise RecordingWriteError(describe_os_error(self.error))


def opus_silence_frame() -> bytes:
    """One 20 ms Opus frame of digital silence, encoded once with libopus."""
    encoder = av.CodecContext.create("libopus", "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.sample_rate = 48000
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.time_base = Fraction(1, 48000)
    encoder.bit_rate = 32000
    encoder.options = {"application": "lowdelay"}  # CELT: digital silence is 3 bytes
    encoder.open()
    frame = av.AudioFrame.from_ndarray(
        np.zeros((1, OPUS_SILENCE_SAMPLES), np.int16), format="s16", layout="mono"
    )
    frame.sample_rate = 48000
    frame.pts = 0
    packets = encoder.encode(frame) + encoder.encode(None)
    return bytes(packets[0])


class TrackWriter:
    """Remuxes one track's frames into one container file."""

    def __init__(
        self,
        file: WritableFile,
        container: Container,
        codec: str,
        clock_rate: int,
        first: EncodedFrame,
    ) -> None:
        self.codec = codec.lower()
        self.clock_rate = clock_rate
        self.frames = 0
        self.end_pts = 0  # pts + duration of the last frame written
        self.width = 0
        self.height = 0
        self.channels = 0
        self.refused = 0  # frames the muxer would not take (kept out, counted)
        self._file = GuardedFile(file)
        self._time_base = Fraction(1, clock_rate)
        self._held: tuple[int, bytes, bool] | None = None
        self._last_duration = 0
        self._last_pts = -1
        self._closed = False
        try:
            self._output = av.open(
                self._file,
                "w",
                format=container.muxer,
                options=dict(container.options),
                buffer_size=IO_BUFFER_BYTES,
            )
            self._stream = self._add_stream(first)
        except Exception as exc:
            self._file.close()
            self._file.check()
            if isinstance(exc, MalformedPayload):
                raise
            raise RecordingWriteError(f"cannot open the {container.muxer} muxer: {exc}") from exc

    def write(self, pts: int, frame: bytes, keyframe: bool, duration: int = 0) -> bool:
        """Add one frame at ``pts`` (clock units); False if it cannot follow the last one.

        Raises RecordingWriteError when the file cannot be written.
        """
        if pts <= self._last_pts:
            return False
        self._last_pts = pts
        if duration:
            return self._mux(pts, frame, keyframe, duration)
        if self._held is not None:
            held_pts, held_frame, held_key = self._held
            self._last_duration = pts - held_pts
            self._mux(held_pts, held_frame, held_key, self._last_duration)
        self._held = (pts, frame, keyframe)
        return True

    def close(self, *, flush: bool = True) -> None:
        """Write what is held (unless aborting) and the trailer; close the file."""
        if self._closed:
            return
        self._closed = True
        try:
            if flush and self._held is not None and self._file.error is None:
                pts, frame, keyframe = self._held
                self._mux(pts, frame, keyframe, self._last_duration or _DEFAULT_VIDEO_FRAME)
            self._held = None
        finally:
            try:
                self._output.close()
            except Exception:  # noqa: BLE001 - the failure is in the guard (below) or harmless
                pass
            self._file.close()
        self._file.check()

    @property
    def failed(self) -> bool:
        return self._file.error is not None

    def _mux(self, pts: int, data: bytes, keyframe: bool, duration: int) -> bool:
        packet = av.Packet(data)
        packet.pts = pts
        packet.dts = pts
        packet.duration = duration
        packet.time_base = self._time_base
        packet.stream = self._stream
        packet.is_keyframe = keyframe
        try:
            self._output.mux(packet)
        except Exception:  # noqa: BLE001 - an I/O failure shows in the guard; else skip the frame
            self._file.check()
            self.refused += 1
            return False
        self._file.check()
        self.frames += 1
        self.end_pts = pts + duration
        return True

    def _add_stream(self, first: EncodedFrame) -> av.stream.Stream:
        if self.codec == "opus":
            audio = self._output.add_stream("libopus", rate=48000)
            # The TOC byte's s bit: stereo (RFC 6716 section 3.1).
            self.channels = 2 if first.data[0] & 0x04 else 1
            audio.codec_context.layout = "stereo" if self.channels == 2 else "mono"
            return audio
        if self.codec == "vp8":
            _, self.width, self.height = vp8_frame_info(first.data)
            return self._stream_from(_ivf(first.data, self.width, self.height), "ivf")
        if self.codec == "h264":
            video = self._stream_from(first.data, "h264")
            context = video.codec_context
            assert isinstance(context, av.VideoCodecContext)
            self.width, self.height = context.width, context.height
            return video
        raise MalformedPayload(f"no writer for codec {self.codec}")

    def _stream_from(self, sample: bytes, fmt: str) -> av.stream.Stream:
        """An output stream copying the codec parameters probed from the first keyframe."""
        try:
            with av.open(io.BytesIO(sample), "r", format=fmt) as probe:
                template = probe.streams.video[0]
                context = template.codec_context
                if not (context.width and context.height):
                    raise MalformedPayload("the first keyframe does not give the picture size")
                stream = self._output.add_stream_from_template(template)
        except (av.FFmpegError, IndexError, ValueError) as exc:
            if isinstance(exc, MalformedPayload):
                raise
            raise MalformedPayload(
                f"the first keyframe does not describe the stream: {exc}"
            ) from exc
        stream.time_base = self._time_base
        return stream


def _ivf(frame: bytes, width: int, height: int) -> bytes:
    """A one-frame IVF file, so FFmpeg can describe the VP8 stream to the muxer."""
    header = b"DKIF" + struct.pack("<HHIHHIIII", 0, 32, 0x30385056, width, height, 90000, 1, 1, 0)
    return header + struct.pack("<IQ", len(frame), 0) + frame
