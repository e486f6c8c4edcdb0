"""Audio for the speech model: recorded files and live Opus payloads → 16 kHz mono float32.

Only transcription decodes audio; the per-track recordings are remuxed, never
transcoded (DESIGN.md, "The media path").
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import BinaryIO

import av
import av.error
import numpy as np
import numpy.typing as npt

from recorder.transcription_errors import AudioDecodeError

__all__ = ["SAMPLE_RATE", "OpusPacketDecoder", "decode_audio_file"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # what Whisper's feature extractor expects
# A jump in presentation time larger than this is a pause in the recording
# (mute, packet loss, DTX): it is filled with silence so that the speech after
# it keeps its place on the timeline.
GAP_TOLERANCE_S = 0.1
# A gap larger than this is not trusted (a broken timestamp, not a pause).
MAX_GAP_S = 6 * 3600.0

Samples = npt.NDArray[np.float32]


def _resampler() -> av.AudioResampler:
    return av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)


def _samples(frame: av.AudioFrame) -> Samples:
    # Packed float mono: one row of samples.
    return np.asarray(frame.to_ndarray(), dtype=np.float32).reshape(-1)


def decode_audio_file(source: Path | BinaryIO, name: str = "") -> Samples:
    """Decode a file's first audio stream (Ogg/Opus, WebM) to 16 kHz mono float32.

    ``source`` is a path or an open binary file (a decrypting storage reader).
    Times count from the file's first sample. Gaps in its timestamps become
    silence. A file cut short (a recording that failed mid-way) yields the
    audio up to the damage.
    """
    name = name or (source.name if isinstance(source, Path) else "audio")
    try:
        container = av.open(str(source) if isinstance(source, Path) else source, mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        raise AudioDecodeError(f"cannot open {name}: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise AudioDecodeError(f"{name} has no audio stream")
        stream = container.streams.audio[0]
        resampler = _resampler()
        pieces: list[Samples] = []
        produced = 0
        first_time: float | None = None
        try:
            for frame in container.decode(stream):
                if frame.time is not None:
                    if first_time is None:
                        first_time = frame.time
                    gap = (frame.time - first_time) - produced / SAMPLE_RATE
                    if GAP_TOLERANCE_S < gap < MAX_GAP_S:
                        silence = np.zeros(int(round(gap * SAMPLE_RATE)), dtype=np.float32)
                        pieces.append(silence)
                        produced += silence.size
                for out in resampler.resample(frame):
                    chunk = _samples(out)
                    pieces.append(chunk)
                    produced += chunk.size
        except av.error.FFmpegError as exc:
            seconds = produced / SAMPLE_RATE
            log.warning("%s: decoding stopped at %.1f s: %s", name, seconds, exc)
        for out in resampler.resample(None):
            pieces.append(_samples(out))
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(pieces)


class OpusPacketDecoder:
    """Decodes one track's Opus RTP payloads, in order, to 16 kHz mono float32."""

    CLOCK_RATE = 48000  # RFC 7587 section 4.1: Opus RTP timestamps tick at 48 kHz

    def __init__(self) -> None:
        self._codec = av.CodecContext.create("opus", "r")
        self._codec.sample_rate = self.CLOCK_RATE
        self._resampler = _resampler()

    def decode(self, payload: bytes) -> Samples:
        """The samples of one payload; raise ValueError for a payload Opus rejects."""
        try:
            frames = self._codec.decode(av.Packet(payload))
            pieces = [_samples(out) for frame in frames for out in self._resampler.resample(frame)]
        except av.error.FFmpegError as exc:
            raise ValueError(f"undecodable Opus payload: {exc}") from exc
        if not pieces:
            return np.zeros(0, dtype=np.float32)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
