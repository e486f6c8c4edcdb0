"""Cuts a live PCM stream into utterances for captions: a streaming energy VAD.

Frames of 20 ms are speech when their level stands above both an absolute
floor and the adaptive noise floor by a margin. An utterance starts at the
first speech frame (with a little audio before it, so the first syllable is
whole), ends after ``silence_s`` without speech, and is cut at the quietest
recent frame when it grows past ``max_chunk_s``, so captions stay short and
timely. Silero VAD (faster-whisper's ``vad_filter``) later drops the chunks
that were only noise; this stage only has to be cheap and streaming.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recorder.transcription_audio import SAMPLE_RATE

__all__ = ["ChunkerSettings", "SpeechChunker", "Utterance"]

FRAME_SAMPLES = SAMPLE_RATE // 50  # 20 ms
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
# How far back from the length limit a cut may move to land in a pause.
CUT_SEARCH_S = 1.5
# The noise floor follows quiet frames slowly, so a long word does not raise it.
NOISE_ADAPT = 0.05

Samples = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ChunkerSettings:
    """Where utterances start and end."""

    max_chunk_s: float = 5.0
    silence_s: float = 0.5
    min_speech_s: float = 0.3
    preroll_s: float = 0.2
    threshold_db: float = -45.0  # dBFS below which nothing is speech
    margin_db: float = 12.0  # how far above the noise floor speech stands

    def __post_init__(self) -> None:
        if not 1.0 <= self.max_chunk_s <= 30.0:
            raise ValueError("max_chunk_s must be between 1 and 30 seconds (Whisper's window)")
        if self.silence_s <= 0 or self.min_speech_s < 0 or self.preroll_s < 0:
            raise ValueError("silence_s must be positive; min_speech_s and preroll_s not negative")


@dataclass(frozen=True)
class Utterance:
    """A stretch of speech, with its place on the stream's clock (seconds)."""

    samples: Samples
    start_s: float
    end_s: float


class SpeechChunker:
    """Turns 16 kHz mono float32 audio, pushed in any sizes, into utterances."""

    def __init__(self, settings: ChunkerSettings | None = None) -> None:
        self.settings = settings or ChunkerSettings()
        self._pending = np.zeros(0, dtype=np.float32)  # less than a frame
        self._position = 0  # samples of the stream so far, whole frames
        self._noise_db = -70.0
        self._preroll_frames = max(1, round(self.settings.preroll_s / FRAME_S))
        self._preroll: deque[Samples] = deque(maxlen=self._preroll_frames)
        # The utterance in progress: its frames, their levels and speech flags.
        self._frames: list[Samples] = []
        self._levels: list[float] = []
        self._speech: list[bool] = []
        self._start = 0  # its first sample on the stream
        self._silent_run = 0  # speechless frames at its end

    @property
    def active(self) -> bool:
        """Whether an utterance is in progress."""
        return bool(self._frames)

    @property
    def position_s(self) -> float:
        return self._position / SAMPLE_RATE

    def push(self, samples: Samples) -> list[Utterance]:
        """Add audio; return the utterances it completed."""
        if self._pending.size:
            samples = np.concatenate([self._pending, samples])
        whole = samples.size - samples.size % FRAME_SAMPLES
        self._pending = samples[whole:]
        done: list[Utterance] = []
        for offset in range(0, whole, FRAME_SAMPLES):
            utterance = self._frame(samples[offset : offset + FRAME_SAMPLES])
            if utterance is not None:
                done.append(utterance)
        return done

    def skip(self, samples: int) -> Utterance | None:
        """A long pause with no audio (mute, lost packets): end the utterance, move the clock."""
        utterance = self.flush()
        self._preroll.clear()
        self._position += samples
        return utterance

    def flush(self) -> Utterance | None:
        """End the utterance in progress now (the track was muted or closed)."""
        self._pending = np.zeros(0, dtype=np.float32)
        return self._finish(len(self._frames))

    def _frame(self, frame: Samples) -> Utterance | None:
        settings = self.settings
        rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64))))
        level = 20.0 * np.log10(rms + 1e-10)
        speech = level > max(settings.threshold_db, self._noise_db + settings.margin_db)
        if not speech:
            self._noise_db += NOISE_ADAPT * (level - self._noise_db)
        self._position += FRAME_SAMPLES
        if not self._frames:
            if not speech:
                self._preroll.append(frame)
                return None
            self._frames = list(self._preroll)
            self._levels = [-100.0] * len(self._frames)
            self._speech = [False] * len(self._frames)
            self._start = self._position - FRAME_SAMPLES * (len(self._frames) + 1)
            self._preroll.clear()
            self._silent_run = 0
        self._frames.append(frame)
        self._levels.append(level)
        self._speech.append(speech)
        self._silent_run = 0 if speech else self._silent_run + 1
        if self._silent_run * FRAME_S >= settings.silence_s:
            # Keep a little of the trailing silence, as the preroll does at the start.
            keep = len(self._frames) - self._silent_run + self._preroll_frames
            return self._finish(min(keep, len(self._frames)))
        if len(self._frames) * FRAME_S >= settings.max_chunk_s:
            return self._finish(self._quietest_cut())
        return None

    def _quietest_cut(self) -> int:
        search = min(len(self._frames) - 1, round(CUT_SEARCH_S / FRAME_S))
        tail = self._levels[len(self._levels) - search :]
        return len(self._frames) - search + int(np.argmin(tail)) + 1

    def _finish(self, cut: int) -> Utterance | None:
        """Emit the first ``cut`` frames; what follows the cut starts the next utterance."""
        if not self._frames:
            return None
        frames = self._frames[:cut]
        speech_s = sum(self._speech[:cut]) * FRAME_S
        start = self._start
        self._start += cut * FRAME_SAMPLES
        del self._frames[:cut], self._levels[:cut], self._speech[:cut]
        if not any(self._speech):
            # Nothing but silence after the cut: back to waiting for speech.
            self._frames, self._levels, self._speech = [], [], []
            self._silent_run = 0
        if not frames or speech_s < self.settings.min_speech_s:
            return None
        samples = np.concatenate(frames)
        return Utterance(samples, start / SAMPLE_RATE, (start + samples.size) / SAMPLE_RATE)
