"""The mixed-audio file of a whole meeting: every participant's Opus decoded, summed, encoded once.

This is the one place the recorder decodes, and it runs in the session's writer
thread, never on the SFU's forwarding path. Decoded audio (48 kHz mono) lands
on the recording's timeline in 20 ms blocks; a block is summed (with clipping
to 16 bits), encoded to Opus and written to Ogg once no more audio can arrive
for it: ``advance`` is told how far the recording has got, and blocks older
than that minus the latency are final. Audio that arrives for a block already
written is dropped and counted.
"""

from __future__ import annotations

from fractions import Fraction

import av
import av.audio.stream
import numpy as np
import numpy.typing as npt

from .errors import RecordingWriteError
from .storage import WritableFile
from .writers import IO_BUFFER_BYTES, GuardedFile

__all__ = ["AudioMixer", "MIX_BLOCK_SAMPLES", "MIX_RATE", "clip_to_int16"]

MIX_RATE = 48000
MIX_BLOCK_SAMPLES = 960  # 20 ms, one Opus frame
_BITRATE = 48000
_INT16_MIN, _INT16_MAX = -32768, 32767


def clip_to_int16(mixed: npt.NDArray[np.int32]) -> npt.NDArray[np.int16]:
    """A sum of 16-bit signals back in 16 bits: clipped, never wrapped around."""
    return np.clip(mixed, _INT16_MIN, _INT16_MAX).astype(np.int16)


class AudioMixer:
    """Sums decoded participant audio on one timeline and writes it as Opus in Ogg."""

    def __init__(self, file: WritableFile, latency_samples: int) -> None:
        self.late_samples = 0
        self.decode_errors = 0
        self._latency = latency_samples
        self._decoders: dict[str, av.AudioCodecContext] = {}
        self._blocks: dict[int, npt.NDArray[np.int32]] = {}
        self._written = 0  # blocks before this one are encoded
        self._end = 0  # one past the last block holding audio
        self._file = GuardedFile(file)
        self._closed = False
        try:
            self._output = av.open(self._file, "w", format="ogg", buffer_size=IO_BUFFER_BYTES)
            self._stream: av.audio.stream.AudioStream = self._output.add_stream(
                "libopus", rate=MIX_RATE
            )
        except Exception as exc:
            self._file.close()
            self._file.check()
            raise RecordingWriteError(f"cannot open the mixed-audio file: {exc}") from exc
        context = self._stream.codec_context
        context.layout = "mono"
        context.format = "s16"
        context.bit_rate = _BITRATE

    @property
    def duration_s(self) -> float:
        """Length of the mix written so far."""
        return self._written * MIX_BLOCK_SAMPLES / MIX_RATE

    def add(self, source: str, position: int, packet: bytes) -> None:
        """Decode one Opus packet of ``source`` and add it at sample ``position`` (48 kHz)."""
        decoder = self._decoders.get(source)
        if decoder is None:
            decoder = self._decoders[source] = _decoder()
        try:
            frames = decoder.decode(av.Packet(packet))
        except av.FFmpegError:
            self.decode_errors += 1
            return
        for frame in frames:
            pcm = frame.to_ndarray().reshape(-1).astype(np.int32, copy=False)
            self._accumulate(position, pcm)
            position += len(pcm)

    def advance(self, now_sample: int) -> None:
        """The recording has reached ``now_sample``: encode the blocks that are final."""
        final = (now_sample - self._latency) // MIX_BLOCK_SAMPLES
        self._encode_until(min(final, self._end))

    def close(self) -> None:
        """Encode everything left and close the file."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._file.error is None:
                self._encode_until(self._end)
                self._mux(self._stream.encode(None))
        finally:
            try:
                self._output.close()
            except Exception:  # noqa: BLE001 - a write failure is reported by the guard
                pass
            self._file.close()
        self._file.check()

    def abort(self) -> None:
        """Close the file without encoding what is pending (the recording failed)."""
        self._written = max(self._written, self._end)
        self._blocks.clear()
        if not self._closed:
            self._closed = True
            try:
                self._output.close()
            except Exception:  # noqa: BLE001 - closing after a failure is best effort
                pass
            self._file.close()

    def _accumulate(self, position: int, pcm: npt.NDArray[np.int32]) -> None:
        start = position
        end = position + len(pcm)
        first_open = self._written * MIX_BLOCK_SAMPLES
        if start < first_open:
            skipped = min(end, first_open) - start
            self.late_samples += skipped
            pcm = pcm[skipped:]
            start += skipped
        while start < end:
            index, offset = divmod(start, MIX_BLOCK_SAMPLES)
            n = min(MIX_BLOCK_SAMPLES - offset, end - start)
            block = self._blocks.get(index)
            if block is None:
                block = self._blocks[index] = np.zeros(MIX_BLOCK_SAMPLES, np.int32)
            block[offset : offset + n] += pcm[:n]
            pcm = pcm[n:]
            start += n
        self._end = max(self._end, -(-end // MIX_BLOCK_SAMPLES))

    def _encode_until(self, stop: int) -> None:
        while self._written < stop:
            block = self._blocks.pop(self._written, None)
            samples = (
                np.zeros((1, MIX_BLOCK_SAMPLES), np.int16)
                if block is None
                else clip_to_int16(block).reshape(1, -1)
            )
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = MIX_RATE
            frame.time_base = Fraction(1, MIX_RATE)
            frame.pts = self._written * MIX_BLOCK_SAMPLES
            self._mux(self._stream.encode(frame))
            self._written += 1

    def _mux(self, packets: list[av.Packet]) -> None:
        try:
            self._output.mux(packets)
        except Exception as exc:
            self._file.check()
            raise RecordingWriteError(f"the mixed-audio muxer failed: {exc}") from exc
        self._file.check()


def _decoder() -> av.AudioCodecContext:
    decoder = av.CodecContext.create("libopus", "r")
    assert isinstance(decoder, av.AudioCodecContext)
    decoder.sample_rate = MIX_RATE
    decoder.layout = "mono"
    decoder.format = "s16"
    return decoder
