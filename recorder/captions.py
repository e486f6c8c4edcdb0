"""Live captions: each audio track's Opus payloads → short VAD-cut chunks → text.

:class:`LiveCaptions` hands out a :class:`CaptionTap` (a ``TrackTap``) for each
audio track the SFU forwards. The tap only queues payloads, on the event loop,
without blocking; when its queue is full it drops and counts. Two worker
threads do the rest, off the forwarding path:

* the *decode* thread decodes each track's Opus payloads in RTP timestamp
  order, fills short gaps with silence, and cuts the audio into utterances
  of at most ``max_chunk_s`` (:mod:`recorder.transcription_chunker`);
* the *recognition* thread transcribes utterances with the shared
  :class:`SpeechModel`. Its queue is bounded too; when speech arrives faster
  than it can be transcribed the *oldest* waiting utterance is dropped (a late
  caption is worth less than a current one) and counted.

Each caption is delivered on the event loop (``loop.call_soon_threadsafe``)
as ``on_caption(meeting_id, caption)`` with ``caption`` = ``{"participant_id",
"name", "text", "start", "end", "final"}``, ready to be the ``caption``
signaling frame. ``start``/``end`` are seconds on the clock of the tap's
``arrival_s``, less the tap's ``origin_s``: pass the meeting's start on that
clock to get times from the start of the meeting. One ``LiveCaptions`` serves
every meeting of a node, so that the CPU spent on captions has one bound.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recorder.transcription_audio import SAMPLE_RATE, OpusPacketDecoder
from recorder.transcription_chunker import ChunkerSettings, SpeechChunker, Utterance
from recorder.transcription_model import SpeechModel
from townhall.contract import TappedTrack

__all__ = ["Caption", "CaptionCallback", "CaptionConfig", "CaptionTap", "LiveCaptions"]

log = logging.getLogger(__name__)

RTP_CLOCK = OpusPacketDecoder.CLOCK_RATE
TICKS_PER_SAMPLE = RTP_CLOCK // SAMPLE_RATE
# A gap shorter than this is filled with silence; a longer one ends the
# utterance and moves the track's clock (a mute, a burst of loss, DTX).
MAX_FILLED_GAP_S = 0.5
# The decode thread wakes this often without packets, to end utterances of
# tracks that went quiet without a close (a publisher whose packets stopped).
IDLE_WAKE_S = 0.25

Caption = dict[str, Any]
# (meeting_id, caption): called on the event loop.
CaptionCallback = Callable[[str, Caption], None]


@dataclass(frozen=True)
class CaptionConfig:
    """The ``[captions]`` section."""

    enabled: bool = True
    language: str | None = None
    beam_size: int = 1  # greedy: captions must keep up on a CPU
    vad_filter: bool = True  # Silero drops chunks that were only noise
    max_chunk_s: float = 5.0
    silence_s: float = 0.5
    min_speech_s: float = 0.3
    threshold_db: float = -45.0
    packet_queue: int = 500  # per track: 10 s of 20 ms packets
    chunk_queue: int = 4  # utterances waiting for the model, all tracks together

    def __post_init__(self) -> None:
        if self.packet_queue < 1 or self.chunk_queue < 1:
            raise ValueError("packet_queue and chunk_queue must be at least 1")
        self.chunker_settings()  # validates the VAD settings

    def chunker_settings(self) -> ChunkerSettings:
        return ChunkerSettings(
            max_chunk_s=self.max_chunk_s,
            silence_s=self.silence_s,
            min_speech_s=self.min_speech_s,
            threshold_db=self.threshold_db,
        )


@dataclass
class _Counters:
    packets: int = 0
    dropped_packets: int = 0  # tap queue full
    malformed: int = 0  # Opus rejected the payload
    late: int = 0  # older than audio already decoded
    utterances: int = 0
    dropped_utterances: int = 0  # recognition queue full
    captions: int = 0
    audio_s: float = 0.0
    processing_s: float = 0.0
    lag_s: float = 0.0  # end of speech → caption, for the latest caption
    max_lag_s: float = 0.0


@dataclass
class _Job:
    tap: CaptionTap
    utterance: Utterance
    queued_at: float  # time.monotonic()


class CaptionTap:
    """A ``TrackTap`` for one audio track: queues Opus payloads for the decode thread."""

    def __init__(self, owner: LiveCaptions, track: TappedTrack, origin_s: float) -> None:
        self.track = track
        self.origin_s = origin_s
        self._owner = owner
        self._limit = owner.config.packet_queue
        # Appended on the event loop, popped by the decode thread: deque's
        # append and popleft are atomic, so no lock is taken per packet.
        self._inbox: deque[tuple[int, bytes, float]] = deque()
        self.closed = False
        # The decode thread's state for this track.
        self.decoder = OpusPacketDecoder()
        self.chunker = SpeechChunker(owner.config.chunker_settings())
        self.anchor_arrival_s: float | None = None  # arrival of the chunker's position 0
        self.next_ts: int | None = None  # where the next payload should start
        self.last_packet_at = 0.0  # time.monotonic() of the last payload decoded
        self.control: deque[tuple[str, bool]] = deque()

    def packet(
        self, sequence_number: int, timestamp: int, marker: bool, payload: bytes, arrival_s: float
    ) -> None:
        """Queue one payload; drop it when the queue is full (never block the SFU)."""
        if self.closed:
            return
        counters = self._owner.counters
        if len(self._inbox) >= self._limit:
            counters.dropped_packets += 1
            return
        counters.packets += 1
        self._inbox.append((timestamp, payload, arrival_s))
        self._owner.wake()

    def muted(self, muted: bool, at_s: float) -> None:
        """End the utterance in progress when the track is muted."""
        self.control.append(("muted", muted))
        self._owner.wake()

    def close(self, at_s: float) -> None:
        """The track ended: caption what was said up to now, then forget the track."""
        self.closed = True
        self.control.append(("close", True))
        self._owner.wake()

    def take(self) -> list[tuple[int, bytes, float]]:
        items = []
        while self._inbox:
            items.append(self._inbox.popleft())
        return items

    def time_of(self, position_s: float) -> float:
        """A chunker position as seconds since ``origin_s`` on the arrival clock."""
        return (self.anchor_arrival_s or 0.0) + position_s - self.origin_s


@dataclass
class _Threads:
    decode: threading.Thread | None = None
    recognize: threading.Thread | None = None
    taps: list[CaptionTap] = field(default_factory=list)


class LiveCaptions:
    """Captions for the audio tracks of one node's meetings; owns two worker threads."""

    def __init__(
        self,
        config: CaptionConfig,
        model: SpeechModel,
        on_caption: CaptionCallback,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.counters = _Counters()
        self._on_caption = on_caption
        self._loop = loop or asyncio.get_running_loop()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._jobs: deque[_Job] = deque()
        self._jobs_ready = threading.Condition()
        self._threads = _Threads()
        self._taps_lock = threading.Lock()

    def tap(self, track: TappedTrack, *, origin_s: float = 0.0) -> CaptionTap | None:
        """A tap for an Opus audio track, or None for anything else.

        ``origin_s``: the meeting's start on the clock of ``arrival_s``.
        """
        if track.kind != "audio" or track.codec.lower() != "opus" or self._stopping.is_set():
            return None
        tap = CaptionTap(self, track, origin_s)
        with self._taps_lock:
            self._threads.taps.append(tap)
        self._start_threads()
        return tap

    def wake(self) -> None:
        # is_set() is a plain read; set() takes a lock: once per batch, not per packet.
        if not self._wake.is_set():
            self._wake.set()

    def stats(self) -> dict[str, Any]:
        """How captions keep up: drops, backlog and lag (for the metrics endpoint)."""
        c = self.counters
        with self._taps_lock:
            taps = len(self._threads.taps)
        return {
            "tracks": taps,
            "packets": c.packets,
            "dropped_packets": c.dropped_packets,
            "malformed_packets": c.malformed,
            "late_packets": c.late,
            "utterances": c.utterances,
            "dropped_utterances": c.dropped_utterances,
            "backlog": len(self._jobs),
            "captions": c.captions,
            "lag_s": round(c.lag_s, 3),
            "max_lag_s": round(c.max_lag_s, 3),
            "audio_s": round(c.audio_s, 3),
            "processing_s": round(c.processing_s, 3),
            "real_time_factor": round(c.processing_s / c.audio_s, 4) if c.audio_s else 0.0,
        }

    def close(self) -> None:
        """Caption what is in flight, then stop the threads (blocking)."""
        self._stopping.set()
        self._wake.set()
        with self._jobs_ready:
            self._jobs_ready.notify_all()
        for thread in (self._threads.decode, self._threads.recognize):
            if thread is not None:
                thread.join()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def _start_threads(self) -> None:
        if self._threads.decode is not None:
            return
        self._threads.decode = threading.Thread(
            target=self._decode_loop, name="captions-decode", daemon=True
        )
        self._threads.recognize = threading.Thread(
            target=self._recognize_loop, name="captions-recognize", daemon=True
        )
        self._threads.decode.start()
        self._threads.recognize.start()

    # -- the decode thread ---------------------------------------------------

    def _decode_loop(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            self._wake.wait(IDLE_WAKE_S)
            # Cleared before draining: a payload queued after the drain sets it again.
            self._wake.clear()
            with self._taps_lock:
                taps = list(self._threads.taps)
            for tap in taps:
                try:
                    self._drain(tap, final=stopping)
                except Exception:  # a bug with one track must not end captions for all
                    log.exception("captions: track %s failed", tap.track.track_id)
                    self._forget(tap)
            if stopping:
                break
        with self._jobs_ready:
            self._jobs_ready.notify_all()

    def _drain(self, tap: CaptionTap, *, final: bool) -> None:
        for timestamp, payload, arrival_s in tap.take():
            self._decode(tap, timestamp, payload, arrival_s)
        while tap.control:
            action, value = tap.control.popleft()
            if action == "close" or (action == "muted" and value):
                self._submit(tap, tap.chunker.flush())
            if action == "close":
                self._forget(tap)
                return
        quiet_s = time.monotonic() - tap.last_packet_at
        if final or (tap.chunker.active and quiet_s > self.config.silence_s + IDLE_WAKE_S):
            self._submit(tap, tap.chunker.flush())
        if final:
            self._forget(tap)

    def _forget(self, tap: CaptionTap) -> None:
        tap.closed = True
        with self._taps_lock:
            if tap in self._threads.taps:
                self._threads.taps.remove(tap)

    def _decode(self, tap: CaptionTap, timestamp: int, payload: bytes, arrival_s: float) -> None:
        if tap.next_ts is None or tap.anchor_arrival_s is None:
            tap.anchor_arrival_s, tap.next_ts = arrival_s, timestamp
        # RFC 3550 section 5.1: timestamps wrap at 2^32; compare modulo.
        gap = (timestamp - tap.next_ts + 2**31) % 2**32 - 2**31
        if gap < -TICKS_PER_SAMPLE * 160:  # more than 10 ms in the past
            self.counters.late += 1
            return
        try:
            samples = tap.decoder.decode(payload)
        except ValueError:
            self.counters.malformed += 1
            return
        tap.last_packet_at = time.monotonic()
        if gap > 0:
            if gap <= MAX_FILLED_GAP_S * RTP_CLOCK:
                self._push(tap, np.zeros(gap // TICKS_PER_SAMPLE, dtype=np.float32))
            else:
                self._submit(tap, tap.chunker.skip(gap // TICKS_PER_SAMPLE))
        self._push(tap, samples)
        tap.next_ts = (timestamp + samples.size * TICKS_PER_SAMPLE) % 2**32

    def _push(self, tap: CaptionTap, samples: np.ndarray[Any, np.dtype[np.float32]]) -> None:
        for utterance in tap.chunker.push(samples):
            self._submit(tap, utterance)

    def _submit(self, tap: CaptionTap, utterance: Utterance | None) -> None:
        if utterance is None:
            return
        self.counters.utterances += 1
        with self._jobs_ready:
            if len(self._jobs) >= self.config.chunk_queue:
                self._jobs.popleft()
                self.counters.dropped_utterances += 1
            self._jobs.append(_Job(tap, utterance, time.monotonic()))
            self._jobs_ready.notify()

    # -- the recognition thread ----------------------------------------------

    def _recognize_loop(self) -> None:
        while True:
            with self._jobs_ready:
                while not self._jobs:
                    decoder = self._threads.decode
                    if self._stopping.is_set() and (decoder is None or not decoder.is_alive()):
                        return
                    self._jobs_ready.wait(IDLE_WAKE_S)
                job = self._jobs.popleft()
            try:
                self._recognize(job)
            except Exception:  # the next utterance may well succeed
                log.exception("captions: recognition failed")

    def _recognize(self, job: _Job) -> None:
        started = time.monotonic()
        utterance = job.utterance
        recognition = self.model.recognize(
            utterance.samples,
            language=self.config.language,
            beam_size=self.config.beam_size,
            vad_filter=self.config.vad_filter,
            word_timestamps=False,
        )
        now = time.monotonic()
        counters = self.counters
        counters.audio_s += utterance.samples.size / SAMPLE_RATE
        counters.processing_s += now - started
        counters.lag_s = now - job.queued_at
        counters.max_lag_s = max(counters.max_lag_s, counters.lag_s)
        text = " ".join(segment.text for segment in recognition.segments).strip()
        if not text:
            return
        track = job.tap.track
        caption: Caption = {
            "participant_id": track.participant_id,
            "name": track.participant_name,
            "text": text,
            "start": round(job.tap.time_of(utterance.start_s), 3),
            "end": round(job.tap.time_of(utterance.end_s), 3),
            "final": True,
        }
        counters.captions += 1
        try:
            self._loop.call_soon_threadsafe(self._deliver, track.meeting_id, caption)
        except RuntimeError:  # the loop is closed: nobody is left to show it
            pass

    def _deliver(self, meeting_id: str, caption: Caption) -> None:
        try:
            self._on_caption(meeting_id, caption)
        except Exception:
            log.exception("captions: on_caption failed")
