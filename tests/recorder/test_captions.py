"""Live captions: real Opus payloads through a CaptionTap, the real model, captions on the loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

from recorder.captions import CaptionConfig, CaptionTap, LiveCaptions
from recorder.transcription_chunker import ChunkerSettings, SpeechChunker
from recorder.transcription_errors import ModelNotFound
from recorder.transcription_model import ModelSettings, Recognition, SpeechModel
from tests.conftest import require_in_ci
from tests.recorder.fixtures.speech import (
    RATE,
    opus_payloads,
    silence,
    speak,
    word_error_rate,
)
from townhall.contract import TappedTrack

SENTENCES = (
    "Welcome to the weekly product meeting.",
    "Please remember to update the shared calendar.",
)
PACKET_S = 0.02
TICKS = 960


def track(participant_id: str = "p-alice", kind: str = "audio", codec: str = "opus") -> TappedTrack:
    return TappedTrack(
        meeting_id="m1",
        participant_id=participant_id,
        participant_name=participant_id.removeprefix("p-").title(),
        track_id=f"{participant_id}-{kind}",
        kind=kind,
        source="microphone" if kind == "audio" else "camera",
        codec=codec,
        clock_rate=48000,
    )


@pytest.fixture(scope="module")
def model() -> SpeechModel:
    try:
        return SpeechModel(ModelSettings(device="cpu"))
    except ModelNotFound as exc:
        require_in_ci(f"the bundled speech model is missing: {exc}")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("captions")
    first, second = (speak(text, "en-us+f3", workdir) for text in SENTENCES)
    samples = np.concatenate([silence(0.6), first, silence(1.2), second, silence(0.6)])
    return {
        "payloads": opus_payloads(samples),
        "first_end_s": 0.6 + first.size / RATE,
        "second_start_s": 0.6 + first.size / RATE + 1.2,
    }


async def feed(
    tap: CaptionTap,
    payloads: list[bytes],
    *,
    start_ts: int = 0,
    arrival: float = 100.0,
    speedup: float = 4.0,
) -> None:
    """Send payloads as the SFU would, ``speedup`` times faster than real time."""
    for index, payload in enumerate(payloads):
        tap.packet(
            index, (start_ts + index * TICKS) % 2**32, False, payload, arrival + index * PACKET_S
        )
        if index % 10 == 9:
            await asyncio.sleep(10 * PACKET_S / speedup)


async def wait_for(captions: list[dict[str, Any]], count: int, timeout_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(captions) < count and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)


async def test_spoken_sentences_arrive_as_captions_on_the_event_loop(
    model: SpeechModel, speech: dict[str, Any]
) -> None:
    captions: list[dict[str, Any]] = []
    loop_thread: list[int] = []

    def on_caption(meeting_id: str, caption: dict[str, Any]) -> None:
        assert meeting_id == "m1"
        loop_thread.append(threading.get_ident())
        captions.append(caption)

    live = LiveCaptions(CaptionConfig(), model, on_caption)
    tap = live.tap(track(), origin_s=100.0)
    assert tap is not None
    # The RTP timestamp starts near the wrap, as a random initial one may.
    await feed(tap, speech["payloads"], start_ts=2**32 - 50 * TICKS)
    tap.close(200.0)
    await wait_for(captions, 2)
    await live.aclose()

    assert [c["final"] for c in captions] == [True, True], captions
    assert {(c["participant_id"], c["name"]) for c in captions} == {("p-alice", "Alice")}
    for caption, sentence in zip(captions, SENTENCES, strict=True):
        assert word_error_rate(sentence, caption["text"]) < 0.35, captions
    # Times count from origin_s on the arrival clock: where the speech was.
    assert captions[0]["start"] == pytest.approx(0.6, abs=0.35)
    assert captions[0]["end"] == pytest.approx(speech["first_end_s"], abs=0.6)
    assert captions[1]["start"] == pytest.approx(speech["second_start_s"], abs=0.35)
    assert set(loop_thread) == {threading.get_ident()}
    stats = live.stats()
    assert stats["captions"] == 2 and stats["dropped_packets"] == 0
    assert stats["packets"] == len(speech["payloads"])
    assert stats["tracks"] == 0  # closed


async def test_only_opus_audio_tracks_are_tapped(model: SpeechModel) -> None:
    live = LiveCaptions(CaptionConfig(), model, lambda meeting_id, caption: None)
    assert live.tap(track(kind="video", codec="VP8")) is None
    assert live.tap(track(codec="PCMU")) is None
    await live.aclose()


async def test_a_full_packet_queue_drops_and_counts_without_blocking(
    model: SpeechModel, speech: dict[str, Any]
) -> None:
    live = LiveCaptions(CaptionConfig(packet_queue=20), model, lambda meeting_id, caption: None)
    tap = live.tap(track())
    assert tap is not None
    payloads = speech["payloads"][:400]
    for index, payload in enumerate(payloads):  # all at once, as a burst on the loop
        tap.packet(index, index * TICKS, False, payload, index * PACKET_S)
    stats = live.stats()
    assert stats["dropped_packets"] > 0
    assert stats["packets"] + stats["dropped_packets"] == len(payloads)
    await asyncio.sleep(0.5)  # the decode thread empties the queue
    # Garbage and stale payloads are counted by the decode thread, never raised.
    tap.packet(500, 500 * TICKS, False, b"\xff\xff\xff", 10.0)
    tap.packet(1, 1 * TICKS, False, payloads[1], 0.02)
    tap.close(20.0)
    await live.aclose()
    stats = live.stats()
    assert stats["late_packets"] >= 1
    assert stats["malformed_packets"] + stats["late_packets"] >= 2


class HeldModel:
    """The real model behind a gate: recognition waits until the test opens it."""

    def __init__(self, model: SpeechModel) -> None:
        self.model = model
        self.gate = threading.Event()

    def recognize(self, audio: Any, **options: Any) -> Recognition:
        self.gate.wait(30)
        return self.model.recognize(audio, **options)


async def test_when_recognition_falls_behind_the_oldest_utterances_are_dropped(
    model: SpeechModel, speech: dict[str, Any]
) -> None:
    captions: list[dict[str, Any]] = []
    held = HeldModel(model)
    live = LiveCaptions(
        CaptionConfig(chunk_queue=1),
        held,  # type: ignore[arg-type]
        lambda meeting_id, caption: captions.append(caption),
    )
    taps = [live.tap(track(f"p-{name}")) for name in ("ann", "ben", "cat", "dan")]
    for tap in taps:
        assert tap is not None
        await feed(tap, speech["payloads"], speedup=50.0)
        tap.close(0.0)
    await asyncio.sleep(1.0)
    stats = live.stats()
    # 8 utterances; one is held in recognition, one waits; the rest were dropped.
    assert stats["utterances"] == 8, stats
    assert stats["dropped_utterances"] == 6 and stats["backlog"] == 1
    held.gate.set()
    await live.aclose()
    await asyncio.sleep(0.1)
    assert [c["participant_id"] for c in captions] == ["p-ann", "p-dan"]
    assert word_error_rate(SENTENCES[1], captions[-1]["text"]) < 0.35
    assert live.stats()["max_lag_s"] >= 1.0


def test_the_chunker_cuts_long_speech_near_the_limit_and_ends_on_silence() -> None:
    chunker = SpeechChunker(ChunkerSettings(max_chunk_s=2.0, silence_s=0.4))
    rate = 16000
    t = np.arange(rate * 5) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    tone[int(1.7 * rate) : int(1.75 * rate)] = 0  # a short dip: the best place to cut
    audio = np.concatenate([np.zeros(rate, dtype=np.float32), tone, np.zeros(rate, np.float32)])
    utterances = [u for i in range(0, audio.size, 999) for u in chunker.push(audio[i : i + 999])]
    assert chunker.flush() is None
    assert all(u.end_s - u.start_s <= 2.0 + 1e-9 for u in utterances)
    assert utterances[0].start_s == pytest.approx(1.0 - 0.2, abs=0.03)  # with the preroll
    assert utterances[0].end_s == pytest.approx(2.74, abs=0.03)  # in the dip
    assert utterances[-1].end_s == pytest.approx(6.0 + 0.2, abs=0.05)
    total = sum(u.samples.size for u in utterances) / rate
    assert total == pytest.approx(5.4, abs=0.05)  # nothing lost or doubled at the cuts


def test_skip_ends_the_utterance_and_moves_the_clock() -> None:
    chunker = SpeechChunker()
    tone = (0.3 * np.sin(np.arange(16000) * 2 * np.pi * 220 / 16000)).astype(np.float32)
    assert chunker.push(tone) == []
    utterance = chunker.skip(16000 * 10)
    assert utterance is not None and utterance.start_s == 0.0
    assert chunker.position_s == pytest.approx(11.0)
    later = chunker.push(tone) + [chunker.flush()]
    # No preroll across the pause: the audio before it is not this utterance's.
    assert later[0] is not None and later[0].start_s == pytest.approx(11.0)
