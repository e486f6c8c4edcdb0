"""The node's ``Recorder``: files, live captions, then transcript and summary.

:class:`RecordingPipeline` is the ``townhall.contract.Recorder`` that the
composition root gives the SFU node. ``start`` opens a
:class:`recorder.session.RecordingSession` (one file per track) and, when the
options ask for ``live_captions``, a :class:`recorder.captions.CaptionTap` per
audio track; the two sit behind one ``TrackTap`` (:class:`TeeTap`). Captions
go to the meeting through the ``on_caption`` callback.

When a session reports ``recording_finished`` (passed on to the control plane
as it is), the rest runs as a task of its own, so that stopping a recording
never waits for it: with ``auto_transcribe`` each participant's audio file is
transcribed in the transcriber's bounded worker pool (one recording at a time)
and ``transcript_ready`` is reported; with ``generate_summary`` the transcript
is summarized (extractive, improved by the LLM endpoint when one is
configured) and ``summary_ready`` is reported. A failure is reported as
``{"status": "failed", "error": ...}``, never raised into the SFU.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from townhall.contract import RecordingEvents, TappedTrack, TrackTap

from .captions import CaptionConfig, LiveCaptions
from .config import RecorderConfig
from .errors import InvalidRecordingOptions
from .session import Recorder, RecordingSession
from .storage import LocalStorage, Storage, recording_folder
from .summary import LlmConfig, summarize_meeting
from .transcription import AudioTrack, Transcriber, TranscriptionConfig, tracks_from_manifest
from .transcription_errors import TranscriptionError
from .transcription_model import SpeechModel

__all__ = ["CaptionSink", "PipelineOptions", "PipelineSession", "RecordingPipeline", "TeeTap"]

log = logging.getLogger(__name__)

# (meeting_id, caption): deliver one caption to the meeting (the ``caption`` frame).
CaptionSink = Callable[[str, dict[str, Any]], Coroutine[Any, Any, None]]
# Seconds each participant of a meeting spoke, as the SFU measured from audio
# levels (RFC 6464); by participant id.
SpeakingTime = Callable[[str], Mapping[str, float]]
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


@dataclass(frozen=True)
class PipelineOptions:
    """What a recording asks for beyond its files."""

    auto_transcribe: bool = False
    generate_summary: bool = False
    live_captions: bool = False
    # None: the transcription's configured language (or detection).
    language: str | None = None

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> PipelineOptions:
        """The pipeline's keys of a recording's options; InvalidRecordingOptions if wrong."""
        values: dict[str, Any] = {}
        for key in ("auto_transcribe", "generate_summary", "live_captions"):
            value = options.get(key)
            if value is not None and not isinstance(value, bool):
                raise InvalidRecordingOptions(f"{key}: expected true or false")
            values[key] = bool(value)
        language = options.get("language")
        if language is not None and (
            not isinstance(language, str) or not _LANGUAGE.match(language)
        ):
            raise InvalidRecordingOptions("language: expected a language code such as 'en'")
        values["language"] = language
        return cls(**values)

    @property
    def wants_transcript(self) -> bool:
        # A summary is made from the transcript, so it needs one too.
        return self.auto_transcribe or self.generate_summary


class TeeTap:
    """One ``TrackTap`` handing every call to several taps (the file's, the captions')."""

    __slots__ = ("taps",)

    def __init__(self, *taps: TrackTap) -> None:
        self.taps = list(taps)

    def packet(
        self, sequence_number: int, timestamp: int, marker: bool, payload: bytes, arrival_s: float
    ) -> None:
        for tap in self.taps:
            try:
                tap.packet(sequence_number, timestamp, marker, payload, arrival_s)
            except Exception:  # noqa: BLE001 - one broken tap must not starve the other
                log.exception("a recording tap failed; detaching it")
                self.taps.remove(tap)
                break

    def muted(self, muted: bool, at_s: float) -> None:
        for tap in self.taps:
            tap.muted(muted, at_s)

    def close(self, at_s: float) -> None:
        for tap in self.taps:
            tap.close(at_s)


class PipelineSession:
    """A recording session whose audio taps may also feed live captions."""

    def __init__(
        self, files: RecordingSession, captions: LiveCaptions | None, origin_s: float
    ) -> None:
        self.recording_id = files.recording_id
        self.files = files
        self._captions = captions
        self._origin_s = origin_s

    def track(self, track: TappedTrack) -> TrackTap | None:
        """The file's tap and, for an audio track with captions on, the caption tap."""
        taps: list[TrackTap] = []
        file_tap = self.files.track(track)
        if file_tap is not None:
            taps.append(file_tap)
        if self._captions is not None:
            caption_tap = self._captions.tap(track, origin_s=self._origin_s)
            if caption_tap is not None:
                taps.append(caption_tap)
        if not taps:
            return None
        return taps[0] if len(taps) == 1 else TeeTap(*taps)

    async def stop(self) -> None:
        """Close the files; the pipeline reports and goes on from there."""
        await self.files.stop()


@dataclass
class _Counters:
    transcripts: int = 0
    transcripts_failed: int = 0
    summaries: int = 0
    summaries_failed: int = 0
    # From the end of a recording to its transcript, for the latest one.
    last_turnaround_s: float = 0.0
    waiting: int = 0  # recordings waiting for their turn


class RecordingPipeline:
    """Starts recordings for the SFU node and makes their transcripts and summaries."""

    def __init__(
        self,
        config: RecorderConfig,
        events: RecordingEvents,
        *,
        storage: Storage | None = None,
        transcription: TranscriptionConfig | None = None,
        captions: CaptionConfig | None = None,
        llm: LlmConfig | None = None,
        on_caption: CaptionSink | None = None,
        model: SpeechModel | None = None,
        speaking_time: SpeakingTime | None = None,
    ) -> None:
        self.events = events
        self.storage = storage or LocalStorage(config.storage_root, config.key)
        self.recorder = Recorder(config, _Reports(self), self.storage)
        self.transcription = transcription or TranscriptionConfig()
        self.model = model or SpeechModel(self.transcription.model_settings())
        self.transcriber = Transcriber(self.transcription, self.model, opener=self.storage.open)
        self._caption_config = captions or CaptionConfig()
        self._captions: LiveCaptions | None = None
        self._on_caption = on_caption
        self._speaking_time = speaking_time
        self._llm = llm
        self._turn = asyncio.Semaphore(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._counters = _Counters()
        # What each running recording asked for beyond its files.
        self._options: dict[str, PipelineOptions] = {}

    # -- the contract's Recorder ---------------------------------------------

    def start(self, meeting_id: str, recording_id: str, options: dict[str, Any]) -> PipelineSession:
        """Open a recording; InvalidRecordingOptions (nothing started) if the options are bad."""
        wanted = PipelineOptions.parse(options)
        captions = None
        if wanted.live_captions and self._on_caption is not None:
            captions = self._live_captions()
        files = self.recorder.start(meeting_id, recording_id, options)
        self._options[recording_id] = wanted
        return PipelineSession(files, captions, files.started_at)

    def _live_captions(self) -> LiveCaptions:
        if self._captions is None:
            # Made on first use, on the event loop that captions are delivered on.
            self._captions = LiveCaptions(self._caption_config, self.model, self._caption)
        return self._captions

    def _caption(self, meeting_id: str, caption: dict[str, Any]) -> None:
        if self._on_caption is not None:
            self._spawn(self._on_caption(meeting_id, caption), "deliver a caption")

    # -- after the files -----------------------------------------------------

    async def _finished(self, meeting_id: str, recording_id: str, result: dict[str, Any]) -> None:
        """The session's report: pass it on, then transcribe and summarize if asked."""
        try:
            await self.events.recording_finished(meeting_id, recording_id, result)
        except Exception:  # noqa: BLE001 - the control plane's trouble must not reach the SFU
            log.exception("recording %s: reporting recording_finished failed", recording_id)
        wanted = self._options.pop(recording_id, PipelineOptions())
        if wanted.wants_transcript:
            # Read now: by the time the summary is made, people may have left.
            spoken = self._spoken(meeting_id)
            self._spawn(
                self._transcribe_and_summarize(meeting_id, recording_id, result, wanted, spoken),
                f"post-process recording {recording_id}",
            )

    async def _transcribe_and_summarize(
        self,
        meeting_id: str,
        recording_id: str,
        result: dict[str, Any],
        wanted: PipelineOptions,
        spoken: Mapping[str, float] | None = None,
    ) -> None:
        ended = time.monotonic()
        self._counters.waiting += 1
        try:
            await self._turn.acquire()
        finally:
            self._counters.waiting -= 1
        try:
            transcript = await self._transcript(meeting_id, recording_id, result, wanted)
        finally:
            self._turn.release()
        self._counters.last_turnaround_s = round(time.monotonic() - ended, 3)
        if wanted.auto_transcribe or transcript["status"] == "completed":
            await self._report("transcript_ready", meeting_id, recording_id, transcript)
        if wanted.generate_summary:
            summary = await self._summary(transcript, result, spoken)
            await self._report("summary_ready", meeting_id, recording_id, summary)

    async def _transcript(
        self,
        meeting_id: str,
        recording_id: str,
        result: dict[str, Any],
        wanted: PipelineOptions,
    ) -> dict[str, Any]:
        folder = recording_folder(meeting_id, recording_id)
        try:
            tracks = tracks_from_manifest({"files": result.get("files", [])}, folder)
            if not tracks:
                raise TranscriptionError("no participant audio was recorded")
            transcript = await self._transcribe(tracks, wanted.language)
        except TranscriptionError as exc:
            self._counters.transcripts_failed += 1
            log.warning("recording %s: no transcript: %s", recording_id, exc)
            return _failed(str(exc), segments=[], text="")
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            self._counters.transcripts_failed += 1
            log.exception("recording %s: transcription failed", recording_id)
            return _failed(f"internal error: {type(exc).__name__}", segments=[], text="")
        self._counters.transcripts += 1
        return {**transcript, "status": "completed", "error": None}

    async def _transcribe(self, tracks: list[AudioTrack], language: str | None) -> dict[str, Any]:
        # The transcriber takes a recording all at once or not at all; a meeting
        # with more speakers than its queue holds goes in batches.
        batch = self.transcription.queue_size + self.transcription.workers
        parts = [
            await self.transcriber.transcribe(tracks[start : start + batch], language=language)
            for start in range(0, len(tracks), batch)
        ]
        return parts[0] if len(parts) == 1 else combine_transcripts(parts)

    def _spoken(self, meeting_id: str) -> Mapping[str, float] | None:
        if self._speaking_time is None:
            return None
        try:
            spoken = self._speaking_time(meeting_id)
        except Exception:  # noqa: BLE001 - the transcript's timing is the fallback
            log.exception("reading the SFU's speaking time failed")
            return None
        return spoken or None

    async def _summary(
        self,
        transcript: dict[str, Any],
        result: dict[str, Any],
        spoken: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        if transcript["status"] != "completed":
            self._counters.summaries_failed += 1
            return _failed(f"no transcript to summarize: {transcript['error']}")
        participants = {
            str(entry["participant_id"]): str(entry.get("name") or entry["participant_id"])
            for entry in result.get("files", [])
            if entry.get("participant_id")
        }
        try:
            summary = await summarize_meeting(
                transcript,
                meeting_date=_meeting_date(result),
                participants=participants,
                speaking_time=spoken,
                llm=self._llm,
            )
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            self._counters.summaries_failed += 1
            log.exception("summary failed")
            return _failed(f"internal error: {type(exc).__name__}")
        self._counters.summaries += 1
        return {**summary, "status": "completed", "error": None}

    async def _report(
        self, event: str, meeting_id: str, recording_id: str, body: dict[str, Any]
    ) -> None:
        try:
            await getattr(self.events, event)(meeting_id, recording_id, body)
        except Exception:  # noqa: BLE001
            log.exception("recording %s: reporting %s failed", recording_id, event)

    def _spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not %s", task.get_name(), exc_info=task.exception())

    # -- the node's lifetime ---------------------------------------------------

    async def drain(self, timeout_s: float) -> bool:
        """Wait until transcripts and summaries begun so far are reported; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._tasks:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.wait(list(self._tasks), timeout=left)
        return True

    def stats(self) -> dict[str, Any]:
        """How the pipeline keeps up (for the metrics endpoint)."""
        c = self._counters
        return {
            "recordings": len(self.recorder.sessions),
            "post_processing": len(self._tasks),
            "waiting": c.waiting,
            "transcripts": c.transcripts,
            "transcripts_failed": c.transcripts_failed,
            "summaries": c.summaries,
            "summaries_failed": c.summaries_failed,
            "last_turnaround_s": c.last_turnaround_s,
            "transcription": self.transcriber.stats(),
            "captions": self._captions.stats() if self._captions is not None else None,
        }

    async def close(self) -> None:
        """Stop running recordings, drop unfinished post-processing, stop the workers."""
        await self.recorder.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.transcriber.aclose()
        if self._captions is not None:
            await self._captions.aclose()


class _Reports:
    """The ``RecordingEvents`` of the sessions: the pipeline, in front of the control plane."""

    def __init__(self, pipeline: RecordingPipeline) -> None:
        self._pipeline = pipeline

    async def recording_finished(
        self, meeting_id: str, recording_id: str, result: dict[str, Any]
    ) -> None:
        await self._pipeline._finished(meeting_id, recording_id, result)

    async def transcript_ready(
        self, meeting_id: str, recording_id: str, transcript: dict[str, Any]
    ) -> None:
        await self._pipeline.events.transcript_ready(meeting_id, recording_id, transcript)

    async def summary_ready(
        self, meeting_id: str, recording_id: str, summary: dict[str, Any]
    ) -> None:
        await self._pipeline.events.summary_ready(meeting_id, recording_id, summary)


def combine_transcripts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One transcript from transcripts of some of a recording's tracks each."""
    segments = sorted(
        (segment for part in parts for segment in part["segments"]),
        key=lambda s: (s["start"], s["end"], s["participant_id"]),
    )
    lines: list[str] = []
    previous: str | None = None
    for segment in segments:
        if segment["participant_id"] == previous:
            lines[-1] += " " + segment["text"]
        else:
            lines.append(f"{segment['speaker']}: {segment['text']}")
        previous = segment["participant_id"]
    audio_s = sum(float(part.get("audio_s", 0.0)) for part in parts)
    processing_s = sum(float(part.get("processing_s", 0.0)) for part in parts)
    return {
        "segments": segments,
        "text": "\n".join(lines),
        "language": max(parts, key=lambda p: float(p.get("audio_s", 0.0))).get("language", ""),
        "duration_s": max(float(part.get("duration_s", 0.0)) for part in parts),
        "audio_s": round(audio_s, 3),
        "processing_s": round(processing_s, 3),
        "real_time_factor": round(processing_s / audio_s, 4) if audio_s else 0.0,
        "errors": [error for part in parts for error in part.get("errors", [])],
    }


def _failed(error: str, **fields: Any) -> dict[str, Any]:
    return {**fields, "status": "failed", "error": error}


def _meeting_date(result: Mapping[str, Any]) -> datetime.date:
    started = result.get("started_at")
    try:
        return datetime.datetime.fromisoformat(str(started)).date()
    except ValueError:
        return datetime.datetime.now(datetime.UTC).date()
