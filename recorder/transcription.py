"""Transcripts of recordings: each participant's audio on its own, merged in time order.

Every participant's audio file is decoded (PyAV, 16 kHz mono) and transcribed
by faster-whisper separately, so every segment has its speaker; segments are
shifted by the file's start offset on the recording's timeline and merged.

The work runs in a bounded pool of worker threads, never on the event loop.
When more files wait than the queue holds, :class:`Transcriber` refuses the
job (:class:`TranscriptionBusy`) instead of queueing without bound, and
:meth:`Transcriber.stats` says how far behind it is (``backlog_s``, ``lag_s``)
for the metrics endpoint.

A transcript::

    {"segments": [{"speaker", "participant_id", "start", "end", "text"}],
     "text", "language", "duration_s", "audio_s", "processing_s",
     "real_time_factor", "errors": [{"participant_id", "file", "error"}]}
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from recorder.transcription_audio import SAMPLE_RATE, decode_audio_file
from recorder.transcription_errors import AudioDecodeError, TranscriptionBusy, TranscriptionError
from recorder.transcription_model import ModelSettings, SpeechModel

__all__ = [
    "AudioTrack",
    "Opener",
    "TrackTranscript",
    "Transcriber",
    "TranscriptionConfig",
    "local_opener",
    "merge_transcripts",
    "tracks_from_manifest",
]

MANIFEST_NAME = "manifest.json"
# A stored file's name (relative, "/"-separated) → its content, decrypted.
Opener = Callable[[str], BinaryIO]


@dataclass(frozen=True)
class TranscriptionConfig:
    """The ``[transcription]`` section: model, device and the bounds of the worker pool."""

    model: str = ""  # a faster-whisper model directory; "" = the bundled tiny.en
    device: str = "auto"  # auto | cpu | cuda
    compute_type: str = ""  # "" = int8 on CPU, float16 on CUDA
    cpu_threads: int = 0  # 0 = CTranslate2's default
    workers: int = 1  # files transcribed at once
    queue_size: int = 16  # files that may wait for a worker before jobs are refused
    beam_size: int = 5
    language: str | None = None  # None = detect (multilingual models); tiny.en is English
    vad_filter: bool = True  # skip silence (Silero VAD) before decoding

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.queue_size < 0:
            raise ValueError("queue_size must be 0 or more")
        if self.beam_size < 1:
            raise ValueError("beam_size must be at least 1")

    def model_settings(self) -> ModelSettings:
        return ModelSettings(
            model=self.model,
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
            num_workers=self.workers,
        )


@dataclass(frozen=True)
class AudioTrack:
    """One participant's audio file and where it starts on the recording's timeline."""

    # The file's name for the opener: a storage name, or a local path.
    path: str | Path
    participant_id: str
    speaker: str
    start_offset_s: float = 0.0
    # Known from the manifest, for the backlog figure before decoding.
    duration_s: float | None = None


@dataclass(frozen=True)
class TrackTranscript:
    """The segments of one track, already on the recording's timeline."""

    track: AudioTrack
    segments: tuple[dict[str, Any], ...]
    language: str
    audio_s: float
    processing_s: float
    error: str | None = None


def local_opener(root: Path) -> Opener:
    """An opener for files stored under ``root`` on the local filesystem."""
    base = root.resolve()

    def open_stored(name: str) -> BinaryIO:
        path = (base / name).resolve()
        # Names come from a manifest on disk: they must not reach outside the root.
        if not path.is_relative_to(base):
            raise TranscriptionError(f"{name!r} is outside the recordings root")
        return path.open("rb")

    return open_stored


def _open_local(name: str) -> BinaryIO:
    return Path(name).open("rb")


def _file_name(folder: str, name: str) -> str:
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise TranscriptionError(f"manifest path {name!r} leaves the recording's folder")
    # The recorder writes names from the storage root ("<folder>/01-ann-microphone.ogg");
    # a name without the folder is taken as relative to the manifest.
    prefix = folder.rstrip("/") + "/"
    return name if name.startswith(prefix) else prefix + name


def tracks_from_manifest(manifest: Mapping[str, Any], folder: str) -> list[AudioTrack]:
    """The per-participant audio files a recording's ``manifest.json`` lists."""
    entries = manifest.get("files", [])
    if not isinstance(entries, list):
        raise TranscriptionError("manifest 'files' must be a list")
    tracks: list[AudioTrack] = []
    for entry in entries:
        if not isinstance(entry, Mapping) or entry.get("kind") != "audio":
            continue
        participant_id, name = entry.get("participant_id"), entry.get("path")
        # The mixed-audio file belongs to nobody; a track that never got a file has no path.
        if not isinstance(participant_id, str) or not participant_id:
            continue
        if not isinstance(name, str) or not name:
            continue
        speaker = entry.get("name") or participant_id
        offset = entry.get("start_offset_s", 0.0)
        duration = entry.get("duration_s")
        tracks.append(
            AudioTrack(
                path=_file_name(folder, name),
                participant_id=participant_id,
                speaker=str(speaker),
                start_offset_s=float(offset) if isinstance(offset, int | float) else 0.0,
                duration_s=float(duration) if isinstance(duration, int | float) else None,
            )
        )
    return tracks


def merge_transcripts(parts: Iterable[TrackTranscript]) -> dict[str, Any]:
    """One transcript from the tracks': segments in time order, speaker-labelled text."""
    parts = list(parts)
    segments = sorted(
        (segment for part in parts for segment in part.segments),
        key=lambda s: (s["start"], s["end"], s["participant_id"]),
    )
    lines: list[str] = []
    previous: str | None = None
    for segment in segments:
        # Consecutive segments of one speaker read as one paragraph.
        if segment["participant_id"] == previous:
            lines[-1] += " " + segment["text"]
        else:
            lines.append(f"{segment['speaker']}: {segment['text']}")
        previous = segment["participant_id"]
    audio_s = sum(part.audio_s for part in parts)
    processing_s = sum(part.processing_s for part in parts)
    spoken = [part for part in parts if part.error is None and part.audio_s > 0]
    language = max(spoken, key=lambda p: p.audio_s).language if spoken else ""
    return {
        "segments": segments,
        "text": "\n".join(lines),
        "language": language,
        "duration_s": round(
            max((p.track.start_offset_s + p.audio_s for p in parts), default=0.0), 3
        ),
        "audio_s": round(audio_s, 3),
        "processing_s": round(processing_s, 3),
        "real_time_factor": round(processing_s / audio_s, 4) if audio_s else 0.0,
        "errors": [
            {
                "participant_id": p.track.participant_id,
                "file": PurePosixPath(str(p.track.path)).name,
                "error": p.error,
            }
            for p in parts
            if p.error is not None
        ],
    }


@dataclass
class _Job:
    track: AudioTrack
    submitted: float
    started: float | None = None


@dataclass
class _Totals:
    completed: int = 0
    failed: int = 0
    rejected: int = 0
    audio_s: float = 0.0
    processing_s: float = 0.0
    jobs: dict[int, _Job] = field(default_factory=dict)


class Transcriber:
    """Transcribes recordings in a bounded pool of worker threads.

    Files are read through ``opener`` (a stored name → a binary reader: the
    storage's decrypting ``open``, or :func:`local_opener`); without one,
    names are local paths.
    """

    def __init__(
        self,
        config: TranscriptionConfig,
        model: SpeechModel | None = None,
        *,
        opener: Opener | None = None,
    ) -> None:
        self.config = config
        self.model = model or SpeechModel(config.model_settings())
        self._opener = opener or _open_local
        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="transcription")
        self._lock = threading.Lock()  # the totals are updated from worker threads
        self._totals = _Totals()
        self._next_job = 0

    async def transcribe_recording(
        self, folder: str | Path, *, language: str | None = None
    ) -> dict[str, Any]:
        """Transcribe the audio files listed in ``<folder>/manifest.json``."""
        folder = str(folder)
        manifest_text = await asyncio.to_thread(self._read, f"{folder}/{MANIFEST_NAME}")
        try:
            manifest = json.loads(manifest_text)
        except ValueError as exc:
            raise TranscriptionError(f"{MANIFEST_NAME} is not valid JSON: {exc}") from exc
        if not isinstance(manifest, dict):
            raise TranscriptionError(f"{MANIFEST_NAME} must be a JSON object")
        return await self.transcribe(tracks_from_manifest(manifest, folder), language=language)

    async def transcribe(
        self, tracks: Sequence[AudioTrack], *, language: str | None = None
    ) -> dict[str, Any]:
        """Transcribe each track on a worker and merge; raise TranscriptionBusy when full."""
        job_ids = self._admit(tracks)
        loop = asyncio.get_running_loop()
        futures = [
            loop.run_in_executor(self._pool, self._run, job_id, language or self.config.language)
            for job_id in job_ids
        ]
        parts = await asyncio.gather(*futures)
        if parts and all(part.error is not None for part in parts):
            raise TranscriptionError(
                "no track could be transcribed: " + "; ".join(str(p.error) for p in parts)
            )
        return merge_transcripts(parts)

    def _admit(self, tracks: Sequence[AudioTrack]) -> list[int]:
        now = time.monotonic()
        with self._lock:
            waiting = sum(1 for job in self._totals.jobs.values() if job.started is None)
            free_workers = self.config.workers - (len(self._totals.jobs) - waiting)
            # All or nothing: half a recording's transcript would name only some speakers.
            if waiting + len(tracks) > self.config.queue_size + max(free_workers, 0):
                self._totals.rejected += 1
                raise TranscriptionBusy(
                    f"transcription queue is full ({waiting} files waiting, "
                    f"{self.config.queue_size} allowed)"
                )
            ids = []
            for track in tracks:
                self._next_job += 1
                self._totals.jobs[self._next_job] = _Job(track, now)
                ids.append(self._next_job)
        return ids

    def _run(self, job_id: int, language: str | None) -> TrackTranscript:
        started = time.monotonic()
        with self._lock:
            job = self._totals.jobs[job_id]
            job.started = started
        try:
            part = self._transcribe_track(job.track, language)
        except Exception as exc:  # one bad file must not sink the others
            part = TrackTranscript(job.track, (), "", 0.0, time.monotonic() - started, str(exc))
        with self._lock:
            del self._totals.jobs[job_id]
            if part.error is None:
                self._totals.completed += 1
                self._totals.audio_s += part.audio_s
                self._totals.processing_s += part.processing_s
            else:
                self._totals.failed += 1
        return part

    def _read(self, name: str) -> bytes:
        try:
            with self._opener(name) as file:
                return file.read()
        except OSError as exc:  # the storage's not-found is a FileNotFoundError too
            raise TranscriptionError(f"cannot read {name}: {exc}") from exc

    def _transcribe_track(self, track: AudioTrack, language: str | None) -> TrackTranscript:
        started = time.monotonic()
        name = str(track.path)
        try:
            file = self._opener(name)
        except OSError as exc:
            raise AudioDecodeError(f"cannot open {PurePosixPath(name).name}: {exc}") from exc
        with file:
            audio = decode_audio_file(file, PurePosixPath(name).name)
        recognition = self.model.recognize(
            audio,
            language=language,
            beam_size=self.config.beam_size,
            vad_filter=self.config.vad_filter,
        )
        offset = track.start_offset_s
        segments = tuple(
            {
                "speaker": track.speaker,
                "participant_id": track.participant_id,
                "start": round(offset + s.start, 3),
                "end": round(offset + s.end, 3),
                "text": s.text,
            }
            for s in recognition.segments
        )
        return TrackTranscript(
            track,
            segments,
            recognition.language,
            audio.size / SAMPLE_RATE,
            time.monotonic() - started,
        )

    def stats(self) -> dict[str, Any]:
        """How the transcriber keeps up: queue, backlog of audio, lag and totals."""
        now = time.monotonic()
        with self._lock:
            jobs = list(self._totals.jobs.values())
            totals = self._totals
            return {
                "queued": sum(1 for job in jobs if job.started is None),
                "running": sum(1 for job in jobs if job.started is not None),
                "queue_size": self.config.queue_size,
                # Audio not yet transcribed, where the manifest said how long it is.
                "backlog_s": round(sum(job.track.duration_s or 0.0 for job in jobs), 3),
                # How long the oldest unfinished file has waited for its transcript.
                "lag_s": round(max((now - job.submitted for job in jobs), default=0.0), 3),
                "completed": totals.completed,
                "failed": totals.failed,
                "rejected": totals.rejected,
                "audio_s": round(totals.audio_s, 3),
                "processing_s": round(totals.processing_s, 3),
                "real_time_factor": (
                    round(totals.processing_s / totals.audio_s, 4) if totals.audio_s else 0.0
                ),
            }

    def close(self) -> None:
        """Stop the workers once the files they hold are done (blocking)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)
