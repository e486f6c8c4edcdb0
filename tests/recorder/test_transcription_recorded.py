"""From the SFU's taps to a transcript: the recorder's own files, encrypted at rest.

Two participants' real Opus payloads go through the recorder (per-track Ogg
files, a manifest with offsets; Bob joins late), then the transcriber reads
the manifest and the files through the storage's decrypting ``open``.
"""

from __future__ import annotations

import base64
import random
from typing import Any

import numpy as np
import pytest

from recorder.config import RecorderConfig
from recorder.session import Recorder
from recorder.transcription import Transcriber, TranscriptionConfig
from recorder.transcription_errors import ModelNotFound
from recorder.transcription_model import ModelSettings, SpeechModel
from tests.conftest import require_in_ci
from tests.recorder.fixtures.speech import (
    RATE,
    opus_payloads,
    silence,
    speak,
    word_error_rate,
)
from townhall.contract import TappedTrack

T0 = 1_800_000_000.0
ALICE = ("The quarterly numbers look better than we expected.", "Thank you all for coming today.")
BOB = "I will prepare the slides for the board meeting."


class Events:
    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    async def recording_finished(self, meeting_id: str, recording_id: str, result: Any) -> None:
        self.results.append(result)

    async def transcript_ready(self, meeting_id: str, recording_id: str, t: Any) -> None: ...

    async def summary_ready(self, meeting_id: str, recording_id: str, s: Any) -> None: ...


def audio_track(participant_id: str, name: str) -> TappedTrack:
    return TappedTrack(
        "m1", participant_id, name, f"{participant_id}-mic", "audio", "microphone", "opus", 48000
    )


def send(tap: Any, payloads: list[bytes], arrival_s: float) -> None:
    """Payloads as the SFU forwards them: random initial sequence number and timestamp."""
    seq, ts = random.randrange(65536), random.randrange(2**32)
    for i, payload in enumerate(payloads):
        tap.packet((seq + i) % 65536, (ts + 960 * i) % 2**32, i == 0, payload, arrival_s + 0.02 * i)


async def test_a_recorded_encrypted_meeting_is_transcribed_per_speaker(tmp_path: Any) -> None:
    try:
        model = SpeechModel(ModelSettings(device="cpu"))
    except ModelNotFound as exc:
        require_in_ci(f"the bundled speech model is missing: {exc}")
    first = speak(ALICE[0], "en-us+f3", tmp_path)
    alice = np.concatenate(
        [silence(0.4), first, silence(7.0), speak(ALICE[1], "en-us+f3", tmp_path)]
    )
    bob = np.concatenate([silence(0.3), speak(BOB, "en-gb", tmp_path), silence(0.3)])
    bob_joins_s = 0.4 + first.size / RATE + 1.0

    key = base64.b64encode(bytes(range(32))).decode()
    config = RecorderConfig(storage_root=tmp_path / "recordings", encryption_key=key)
    events = Events()
    recorder = Recorder(config, events, clock=lambda: T0)
    session = recorder.start("m1", "r1", {"encryption_enabled": True, "include_video": False})
    alice_tap = session.track(audio_track("p-alice", "Alice"))
    bob_tap = session.track(audio_track("p-bob", "Bob"))
    assert alice_tap is not None and bob_tap is not None
    send(alice_tap, opus_payloads(alice), T0)
    send(bob_tap, opus_payloads(bob), T0 + bob_joins_s)
    await session.stop()
    assert events.results and events.results[0]["status"] == "completed", events.results
    manifest_name = events.results[0]["manifest"]
    folder = manifest_name.rsplit("/", 1)[0]

    transcriber = Transcriber(TranscriptionConfig(), model, opener=recorder.storage.open)
    try:
        transcript = await transcriber.transcribe_recording(folder)
    finally:
        await transcriber.aclose()

    def said(pid: str) -> str:
        return " ".join(s["text"] for s in transcript["segments"] if s["participant_id"] == pid)

    assert word_error_rate(" ".join(ALICE), said("p-alice")) < 0.35, transcript
    assert word_error_rate(BOB, said("p-bob")) < 0.35, transcript
    speakers = [s["speaker"] for s in transcript["segments"]]
    turns = [name for i, name in enumerate(speakers) if i == 0 or name != speakers[i - 1]]
    assert turns == ["Alice", "Bob", "Alice"], transcript["segments"]
    bob_start = next(s["start"] for s in transcript["segments"] if s["speaker"] == "Bob")
    # Bob's words sit where he spoke on the meeting's timeline (his file's offset).
    assert bob_start == pytest.approx(bob_joins_s + 0.3, abs=0.6)
