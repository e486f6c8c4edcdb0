"""The node's recording pipeline: files, live captions, then transcript and summary.

Real Opus payloads of real (synthesized) speech go through the taps the SFU
would call, into real files in a real storage; the real model transcribes
them. The control plane's side is a recorder of what it is told.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recorder.captions import CaptionConfig
from recorder.config import RecorderConfig
from recorder.errors import InvalidRecordingOptions
from recorder.pipeline import (
    PipelineOptions,
    RecordingPipeline,
    TeeTap,
    combine_transcripts,
)
from recorder.storage import LocalStorage
from recorder.transcription import TranscriptionConfig
from recorder.transcription_errors import ModelNotFound
from recorder.transcription_model import ModelSettings, SpeechModel
from tests.conftest import require_in_ci
from tests.recorder.fixtures.speech import opus_payloads, silence, speak, word_error_rate
from townhall.contract import TappedTrack, TrackTap

ALICE = "Good morning everyone, thank you for joining the planning meeting."
BOB = "I will send the report to the whole team on Friday."
BOB_OFFSET_S = 4.0
WAIT_S = 60.0


class Events:
    """The control plane's side of RecordingEvents: keeps what it is told, in order."""

    def __init__(self, fail: bool = False) -> None:
        self.told: list[tuple[str, str, dict[str, Any]]] = []
        self.fail = fail

    async def _keep(self, kind: str, recording_id: str, body: dict[str, Any]) -> None:
        self.told.append((kind, recording_id, body))
        if self.fail:
            raise RuntimeError("the control plane is having a bad day")

    async def recording_finished(
        self, meeting_id: str, recording_id: str, result: dict[str, Any]
    ) -> None:
        await self._keep("finished", recording_id, result)

    async def transcript_ready(
        self, meeting_id: str, recording_id: str, transcript: dict[str, Any]
    ) -> None:
        await self._keep("transcript", recording_id, transcript)

    async def summary_ready(
        self, meeting_id: str, recording_id: str, summary: dict[str, Any]
    ) -> None:
        await self._keep("summary", recording_id, summary)

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.told]

    def body(self, kind: str) -> dict[str, Any]:
        return next(body for k, _, body in self.told if k == kind)

    async def until(self, kinds: list[str]) -> None:
        deadline = time.monotonic() + WAIT_S
        while self.kinds() != kinds:
            assert time.monotonic() < deadline, f"told {self.kinds()}, waiting for {kinds}"
            await asyncio.sleep(0.05)


def track(name: str, kind: str = "audio", codec: str = "opus") -> TappedTrack:
    return TappedTrack(
        meeting_id="m1",
        participant_id=f"p-{name.lower()}",
        participant_name=name,
        track_id=f"{name}-{kind}",
        kind=kind,
        source="microphone" if kind == "audio" else "camera",
        codec=codec,
        clock_rate=48000 if kind == "audio" else 90000,
    )


@pytest.fixture(scope="module")
def model() -> SpeechModel:
    try:
        return SpeechModel(ModelSettings(device="cpu"))
    except ModelNotFound as exc:
        require_in_ci(f"the bundled speech model is missing: {exc}")


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    workdir = tmp_path_factory.mktemp("pipeline")
    return {
        "Alice": opus_payloads(
            np.concatenate([silence(0.4), speak(ALICE, "en-us+f3", workdir), silence(0.6)])
        ),
        "Bob": opus_payloads(
            np.concatenate([silence(0.4), speak(BOB, "en-gb", workdir), silence(0.6)])
        ),
    }


def pipeline(
    tmp_path: Path, events: Events, model: SpeechModel, **changes: Any
) -> RecordingPipeline:
    return RecordingPipeline(
        RecorderConfig(storage_root=tmp_path / "recordings"),
        events,
        storage=LocalStorage(tmp_path / "recordings"),
        transcription=changes.pop("transcription", TranscriptionConfig(device="cpu")),
        captions=CaptionConfig(),
        model=model,
        **changes,
    )


async def feed(tap: TrackTap, payloads: list[bytes], arrival_s: float, speedup: float = 8) -> None:
    """Packets as the SFU forwards them (20 ms each), faster than real time."""
    for index, payload in enumerate(payloads):
        tap.packet(index, (1000 + index * 960) % 2**32, False, payload, arrival_s + index * 0.02)
        if index % 10 == 9:
            await asyncio.sleep(0.2 / speedup)


async def test_files_then_transcript_then_summary_with_live_captions_on_the_way(
    tmp_path: Path, model: SpeechModel, voices: dict[str, list[bytes]]
) -> None:
    events = Events()
    captions: list[tuple[str, dict[str, Any]]] = []

    async def on_caption(meeting_id: str, caption: dict[str, Any]) -> None:
        captions.append((meeting_id, caption))

    def measured(meeting_id: str) -> dict[str, float]:
        # The SFU's audio-level speaking time (RFC 6464), read when the recording stops.
        assert meeting_id == "m1"
        return {"p-alice": 12.5, "p-bob": 3.0}

    recorder = pipeline(tmp_path, events, model, on_caption=on_caption, speaking_time=measured)
    try:
        options = {"auto_transcribe": True, "generate_summary": True, "live_captions": True}
        session = recorder.start("m1", "rec1", options)
        alice, bob = session.track(track("Alice")), session.track(track("Bob"))
        assert isinstance(alice, TeeTap) and isinstance(bob, TeeTap)  # file and captions
        camera = session.track(track("Alice", "video", "VP8"))
        assert camera is not None and not isinstance(camera, TeeTap)  # no captions for video
        origin = session.files.started_at
        await asyncio.gather(
            feed(alice, voices["Alice"], origin),
            feed(bob, voices["Bob"], origin + BOB_OFFSET_S),
        )
        for tap in (alice, bob, camera):
            tap.close(time.time())
        await session.stop()
        # Stopping waits for the files only; the transcript comes after.
        assert events.kinds() == ["finished"]
        result = events.body("finished")
        assert result["status"] == "completed", result
        await events.until(["finished", "transcript", "summary"])
        assert await recorder.drain(WAIT_S)
    finally:
        await recorder.close()

    transcript = events.body("transcript")
    assert transcript["status"] == "completed" and transcript["error"] is None
    for name, sentence in (("Alice", ALICE), ("Bob", BOB)):
        mine = [s for s in transcript["segments"] if s["speaker"] == name]
        assert mine and {s["participant_id"] for s in mine} == {f"p-{name.lower()}"}
        assert word_error_rate(sentence, " ".join(s["text"] for s in mine)) < 0.35, transcript
    bob_start = min(s["start"] for s in transcript["segments"] if s["speaker"] == "Bob")
    assert bob_start >= BOB_OFFSET_S
    summary = events.body("summary")
    assert summary["status"] == "completed" and summary["generator"] == "extractive"
    assert {s["speaker"] for s in summary["speaking_time"]} == {"Alice", "Bob"}
    seconds = {s["speaker"]: s["seconds"] for s in summary["speaking_time"]}
    assert seconds == {"Alice": 12.5, "Bob": 3.0}  # the SFU's measure, not the transcript's
    assert any("report" in item["text"] for item in summary["action_items"]), summary

    spoken = {caption["name"]: caption["text"] for _, caption in captions}
    assert set(spoken) == {"Alice", "Bob"}, captions
    assert word_error_rate(ALICE, spoken["Alice"]) < 0.5
    assert all(meeting_id == "m1" for meeting_id, _ in captions)
    stats = recorder.stats()
    assert (stats["transcripts"], stats["summaries"]) == (1, 1)
    assert stats["captions"]["captions"] >= 2


async def test_failures_are_reported_never_raised(tmp_path: Path, model: SpeechModel) -> None:
    # The control plane fails every report, and there is no audio to transcribe.
    events = Events(fail=True)
    recorder = pipeline(tmp_path, events, model)
    try:
        wanted = {"auto_transcribe": True, "generate_summary": True}
        session = recorder.start("m1", "silent", wanted)
        assert session.track(track("Alice", "video", "AV1")) is None  # not recorded
        await session.stop()
        await events.until(["finished", "transcript", "summary"])
    finally:
        await recorder.close()
    transcript, summary = events.body("transcript"), events.body("summary")
    assert transcript["status"] == "failed"
    assert transcript["error"] == "no participant audio was recorded"
    assert (transcript["segments"], transcript["text"]) == ([], "")
    assert summary["status"] == "failed" and "no transcript" in summary["error"]


async def test_nothing_after_the_files_unless_asked(tmp_path: Path, model: SpeechModel) -> None:
    events = Events()
    recorder = pipeline(tmp_path, events, model)
    try:
        session = recorder.start("m1", "plain", {"live_captions": True})  # no on_caption: none
        tap = session.track(track("Alice"))
        assert tap is not None and not isinstance(tap, TeeTap)
        await session.stop()
        assert await recorder.drain(5)
    finally:
        await recorder.close()
    assert events.kinds() == ["finished"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"auto_transcribe": "yes"}, "auto_transcribe"),
        ({"live_captions": 1}, "live_captions"),
        ({"language": "english"}, "language"),
        ({"format": "avi"}, "format"),
    ],
)
async def test_bad_options_start_nothing(
    tmp_path: Path, model: SpeechModel, options: dict[str, Any], message: str
) -> None:
    recorder = pipeline(tmp_path, Events(), model)
    try:
        with pytest.raises(InvalidRecordingOptions, match=message):
            recorder.start("m1", "bad", options)
        assert recorder.recorder.sessions == []
        assert list((tmp_path / "recordings").iterdir()) == []
    finally:
        await recorder.close()


def test_pipeline_options_default_to_nothing_and_a_summary_needs_a_transcript() -> None:
    assert PipelineOptions.parse({}) == PipelineOptions()
    assert not PipelineOptions().wants_transcript
    wanted = PipelineOptions.parse({"generate_summary": True, "language": "en-GB"})
    assert wanted.wants_transcript and wanted.language == "en-GB"


async def test_a_meeting_larger_than_the_queue_is_transcribed_in_batches(
    tmp_path: Path, model: SpeechModel, voices: dict[str, list[bytes]]
) -> None:
    # A queue of 0 with one worker takes one file at a time: two speakers, two batches.
    events = Events()
    config = TranscriptionConfig(device="cpu", workers=1, queue_size=0)
    recorder = pipeline(tmp_path, events, model, transcription=config)
    try:
        session = recorder.start("m1", "batches", {"auto_transcribe": True})
        alice, bob = session.track(track("Alice")), session.track(track("Bob"))
        assert alice is not None and bob is not None
        origin = session.files.started_at
        await feed(alice, voices["Alice"], origin, speedup=50)
        await feed(bob, voices["Bob"], origin + BOB_OFFSET_S, speedup=50)
        await session.stop()
        await events.until(["finished", "transcript"])
    finally:
        await recorder.close()
    transcript = events.body("transcript")
    assert transcript["status"] == "completed", transcript
    assert {s["speaker"] for s in transcript["segments"]} == {"Alice", "Bob"}
    assert transcript["text"].splitlines()[0].startswith("Alice: ")
    assert transcript["text"].splitlines()[-1].startswith("Bob: ")


def test_combined_transcripts_keep_time_order_and_speaker_paragraphs() -> None:
    def segment(who: str, start: float, text: str) -> dict[str, Any]:
        return {
            "speaker": who,
            "participant_id": f"p-{who}",
            "start": start,
            "end": start + 1,
            "text": text,
        }

    first = {
        "segments": [segment("ann", 0.0, "One."), segment("ann", 5.0, "Three.")],
        "language": "en",
        "duration_s": 6.0,
        "audio_s": 6.0,
        "processing_s": 0.6,
        "errors": [],
    }
    second = {
        "segments": [segment("bo", 2.0, "Two."), segment("bo", 6.5, "Four.")],
        "language": "en",
        "duration_s": 8.0,
        "audio_s": 4.0,
        "processing_s": 0.4,
        "errors": [{"participant_id": "p-cy", "file": "x.ogg", "error": "broken"}],
    }
    combined = combine_transcripts([first, second])
    assert [s["text"] for s in combined["segments"]] == ["One.", "Two.", "Three.", "Four."]
    assert combined["text"] == "ann: One.\nbo: Two.\nann: Three.\nbo: Four."
    assert combined["duration_s"] == 8.0 and combined["real_time_factor"] == 0.1
    assert combined["errors"] == second["errors"]


class Broken:
    def packet(self, *args: Any) -> None:
        raise RuntimeError("a bug in one tap")

    def muted(self, muted: bool, at_s: float) -> None: ...

    def close(self, at_s: float) -> None: ...


class Counting:
    def __init__(self) -> None:
        self.packets = 0
        self.events: list[str] = []

    def packet(self, *args: Any) -> None:
        self.packets += 1

    def muted(self, muted: bool, at_s: float) -> None:
        self.events.append(f"muted={muted}")

    def close(self, at_s: float) -> None:
        self.events.append("closed")


def test_a_broken_tap_is_detached_and_the_other_goes_on() -> None:
    counting = Counting()
    tee = TeeTap(Broken(), counting)
    for index in range(3):
        tee.packet(index, index * 960, False, b"\x00", 0.0)
    assert len(tee.taps) == 1 and counting.packets >= 2
    tee.muted(True, 1.0)
    tee.close(2.0)
    assert counting.events == ["muted=True", "closed"]
