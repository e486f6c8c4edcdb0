"""End to end through a real ``townhall serve``: record a meeting, transcribe it, summarize it.

Alice (a host) publishes real synthesized speech (``espeak-ng`` at test time,
paced in 20 ms frames in real time) and a VP8 camera; the recording starts
over REST with live captions on; Bob joins late and speaks his own sentences;
the recording stops over REST. Then, within bounds: the transcript names
each speaker with their own words (word error rate under 35 %, computed
here), the per-track files downloaded through their signed links play to the
end with the durations the test measured, Bob's file starts where he joined,
the summary exists, and the ``recording`` indicator frames reached both. A
second recording is started and stopped by the host over signaling
(``record`` frames), and both participants are told.

Run as root in a loopback-only namespace:
``unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/integration -v'``
"""

from __future__ import annotations

import asyncio
import dataclasses
import fractions
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from clients.python import (
    CaptionReceived,
    ClientOptions,
    Participant,
    RecordingChanged,
)
from clients.python.media import SyntheticVideoTrack
from tests.conftest import TownhallServer
from tests.recorder.fixtures.speech import RATE, Pcm, silence, speak

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ALICE = (
    "Good morning everyone, thank you for joining the planning meeting.",
    "The new website should be ready before the end of the month.",
)
BOB = (
    "I finished the design review yesterday and the customers liked it.",
    "I will send the report to the whole team on Friday.",
)
FRAME = 960  # 20 ms at 48 kHz
WAIT_S = 15.0
TRANSCRIPT_WAIT_S = 60.0
# How far a file's duration or offset may be from what the test measured: the
# first packets need a moment to arrive, and the stop a moment to land.
TOLERANCE_S = 1.5


class SpeechTrack(MediaStreamTrack):
    """Microphone audio: silence, and whatever it is told to say, in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pending: Pcm = np.zeros(0, np.int16)
        self._origin: float | None = None
        self._index = 0
        self._time_base = fractions.Fraction(1, RATE)

    def say(self, samples: Pcm) -> float:
        """Queue speech; how many seconds until everything queued has been sent."""
        self._pending = np.concatenate([self._pending, samples])
        return self._pending.size / RATE

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._origin is None:
            self._origin = loop.time()
        delay = self._origin + self._index * FRAME / RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        chunk, self._pending = self._pending[:FRAME], self._pending[FRAME:]
        if chunk.size < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - chunk.size, np.int16)])
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._index * FRAME
        frame.time_base = self._time_base
        self._index += 1
        return frame


class Listener(Participant):
    """A participant that keeps the recording and caption frames it got, as dicts."""

    def __init__(self, **fields: Any) -> None:
        super().__init__(**fields)
        self.frames: list[dict[str, Any]] = []
        self.add_listener(self._keep)

    def _keep(self, event: Any) -> None:
        kinds = {RecordingChanged: "recording", CaptionReceived: "caption"}
        kind = kinds.get(type(event))
        if kind is not None:
            self.frames.append({"type": kind, **dataclasses.asdict(event)})

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [
            f
            for f in self.frames
            if f.get("type") == kind and all(f.get(k) == v for k, v in match.items())
        ]


def words(text: str) -> list[str]:
    cleaned = "".join(c if c.isalnum() or c == "'" else " " for c in text.lower())
    return cleaned.replace("'", "").split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance over the reference's length."""
    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(
                previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)
            )
        previous = current
    return previous[-1] / max(len(ref), 1)


def media_duration(data: bytes, kind: str) -> tuple[float, int]:
    """Decode every frame of a file's first ``kind`` stream: (seconds covered, frames)."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0] if kind == "audio" else container.streams.video[0]
        first = last = None
        frames = 0
        for frame in container.decode(stream):
            assert frame.time is not None
            end = frame.time + (frame.samples / frame.sample_rate if kind == "audio" else 1 / 15)
            first = frame.time if first is None else first
            last = end
            frames += 1
    assert first is not None and last is not None, f"no {kind} frame decoded"
    return last - first, frames


class Rest:
    """The REST API over aiohttp, so that the event loop (and the media) never stalls."""

    def __init__(self, server: TownhallServer, http: aiohttp.ClientSession) -> None:
        self.base = server.base_url
        self.key = server.api_key
        self.http = http

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.key}"}
        async with self.http.request(
            method, self.base + path, json=body, headers=headers, timeout=aiohttp.ClientTimeout(30)
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.read()

    async def until(
        self, path: str, done: Callable[[Any], bool], timeout_s: float, what: str
    ) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            status, body = await self.call("GET", path)
            if status == 200 and done(body):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not within {timeout_s:g} s: {status} {body}")
            await asyncio.sleep(0.5)


def speech(text: str, voice: str, workdir: Path) -> Pcm:
    return np.concatenate([speak(text, voice, workdir), silence(0.6)])


async def test_a_recorded_meeting_is_transcribed_by_speaker_and_summarized(
    server: TownhallServer, tmp_path: Path
) -> None:
    lines = {
        "alice": [speech(t, "en-us+f3", tmp_path) for t in ALICE],
        "bob": [speech(t, "en-gb", tmp_path) for t in BOB],
    }
    options = ClientOptions(video_codec="VP8", timeout_s=WAIT_S)
    meeting_id = (await asyncio.to_thread(server.create_meeting, "recorded"))["id"]
    alice_voice, bob_voice = SpeechTrack(), SpeechTrack()
    async with aiohttp.ClientSession() as http:
        rest = Rest(server, http)
        alice = await Listener.join(
            server.base_url, meeting_id, "Alice", api_key=server.api_key, role="host",
            options=options,
        )  # fmt: skip
        bob: Listener | None = None
        try:
            await alice.publish(alice_voice, SyntheticVideoTrack(320, 240, fps=15))
            assert alice.grant is not None and alice.grant.control_token
            host_token = alice.grant.control_token

            before = time.time()
            status, started = await rest.call(
                "POST",
                f"/api/v1/meetings/{meeting_id}/recording/start",
                {"live_captions": True, "auto_transcribe": True, "generate_summary": True},
                token=host_token,
            )
            started_at = (before + time.time()) / 2
            assert status == 201, started
            recording_id = started["id"]
            assert started["status"] == "recording"
            await alice.wait_until(
                lambda: bool(alice.of("recording", state="started", recording_id=recording_id)),
                WAIT_S,
                "Alice is told she is recorded",
            )

            await asyncio.sleep(alice_voice.say(lines["alice"][0]))

            bob = await Listener.join(
                server.base_url, meeting_id, "Bob", api_key=server.api_key, options=options
            )
            await bob.publish(bob_voice)
            bob_joined_at = time.time()
            await asyncio.sleep(bob_voice.say(lines["bob"][0]))
            await asyncio.sleep(alice_voice.say(lines["alice"][1]))
            await asyncio.sleep(bob_voice.say(lines["bob"][1]) + 0.5)

            before = time.time()
            status, stopped = await rest.call(
                "POST", f"/api/v1/meetings/{meeting_id}/recording/stop", token=host_token
            )
            stopped_at = (before + time.time()) / 2
            assert status == 200, stopped
            assert stopped["status"] == "completed", stopped
            for listener in (alice, bob):
                await listener.wait_until(
                    lambda who=listener: bool(
                        who.of("recording", state="stopped", recording_id=recording_id)
                    ),
                    WAIT_S,
                    f"{listener.name} is told the recording stopped",
                )

            transcript = await rest.until(
                f"/api/v1/meetings/{meeting_id}/transcript?recording_id={recording_id}",
                lambda body: body["status"] != "pending",
                TRANSCRIPT_WAIT_S,
                "the transcript",
            )
            transcript_s = time.time() - stopped_at
            print(f"stop -> transcript: {transcript_s:.1f} s, RTF {transcript['real_time_factor']}")
            assert transcript["status"] == "completed", transcript
            check_transcript(transcript, alice, bob)
            bob_offset = min(
                s["start"]
                for s in transcript["segments"]
                if s["participant_id"] == bob.participant_id
            )
            assert bob_offset >= bob_joined_at - started_at - TOLERANCE_S

            summary = await rest.until(
                f"/api/v1/meetings/{meeting_id}/summary?recording_id={recording_id}",
                lambda body: body["status"] != "pending",
                WAIT_S,
                "the summary",
            )
            assert summary["status"] == "completed", summary
            assert summary["summary"]["key_points"] or summary["summary"]["action_items"]
            speakers = {s["speaker"] for s in summary["summary"]["speaking_time"]}
            assert speakers == {"Alice", "Bob"}

            status, vtt = await rest.call(
                "GET", f"/api/v1/meetings/{meeting_id}/transcript?format=vtt"
            )
            assert status == 200 and vtt.startswith(b"WEBVTT") and b"<v Bob>" in vtt

            await check_files(
                rest, meeting_id, recording_id, alice, bob, started_at, bob_joined_at, stopped_at
            )

            captions = alice.of("caption", participant_id=alice.participant_id)
            assert captions and all(c["text"] for c in captions), alice.frames
            assert "planning" in " ".join(c["text"] for c in captions).lower()

            await record_over_signaling(rest, meeting_id, alice, bob)
        finally:
            for listener in (bob, alice):
                if listener is not None:
                    await listener.leave()


def check_transcript(transcript: dict[str, Any], alice: Listener, bob: Listener) -> None:
    """Each speaker's words are their own (WER < 35 %), under their own name."""
    for who, sentences in ((alice, ALICE), (bob, BOB)):
        mine = [s for s in transcript["segments"] if s["participant_id"] == who.participant_id]
        assert mine and all(s["speaker"] == who.name for s in mine), transcript["segments"]
        said = " ".join(s["text"] for s in mine)
        error_rate = word_error_rate(" ".join(sentences), said)
        print(f"{who.name}: WER {error_rate:.2f}: {said}")
        assert error_rate < 0.35, (who.name, said)
    starts = [s["start"] for s in transcript["segments"]]
    assert starts == sorted(starts)


async def check_files(
    rest: Rest,
    meeting_id: str,
    recording_id: str,
    alice: Listener,
    bob: Listener,
    started_at: float,
    bob_joined_at: float,
    stopped_at: float,
) -> None:
    """Every file downloads through its signed link and plays to the end, at the right length."""
    status, listed = await rest.call("GET", f"/api/v1/meetings/{meeting_id}/recordings")
    assert status == 200, listed
    [recording] = [r for r in listed["recordings"] if r["id"] == recording_id]
    assert recording["transcript_status"] == "completed"
    files = {(f["participant_id"], f["kind"]): f for f in recording["files"]}
    assert set(files) == {
        (alice.participant_id, "audio"),
        (alice.participant_id, "video"),
        (bob.participant_id, "audio"),
    }, files
    expected = {
        (alice.participant_id, "audio"): (0.0, stopped_at - started_at),
        (alice.participant_id, "video"): (0.0, stopped_at - started_at),
        (bob.participant_id, "audio"): (bob_joined_at - started_at, stopped_at - bob_joined_at),
    }
    for key, entry in files.items():
        offset, length = expected[key]
        async with rest.http.get(entry["download_url"]) as response:
            assert response.status == 200, await response.text()
            data = await response.read()
        assert len(data) == entry["bytes"]
        played, frames = media_duration(data, entry["kind"])
        print(
            f"{entry['id']}: offset {entry['start_offset_s']} s (measured {offset:.2f}), "
            f"{entry['duration_s']} s (measured {length:.2f}), played {played:.2f} s, "
            f"{frames} frames"
        )
        assert abs(entry["start_offset_s"] - offset) < TOLERANCE_S, (entry, offset)
        assert abs(entry["duration_s"] - length) < TOLERANCE_S, (entry, length)
        assert abs(played - entry["duration_s"]) < 0.5, (entry, played)


async def record_over_signaling(
    rest: Rest, meeting_id: str, alice: Listener, bob: Listener
) -> None:
    """The host's record button: both hear it started and stopped; the recording is listed."""
    await alice.record("start")
    await alice.wait_until(
        lambda: len(alice.of("recording", state="started")) == 2, WAIT_S, "a second recording"
    )
    [_, second] = alice.of("recording", state="started")
    await bob.wait_until(
        lambda: bool(bob.of("recording", state="started", recording_id=second["recording_id"])),
        WAIT_S,
        "Bob is told he is recorded",
    )
    await asyncio.sleep(1.0)
    await alice.record("stop")
    for listener in (alice, bob):
        await listener.wait_until(
            lambda who=listener: bool(
                who.of("recording", state="stopped", recording_id=second["recording_id"])
            ),
            WAIT_S,
            f"{listener.name} is told the second recording stopped",
        )
    listed = await rest.until(
        f"/api/v1/meetings/{meeting_id}/recordings",
        lambda body: any(
            r["id"] == second["recording_id"] and r["status"] != "recording"
            for r in body["recordings"]
        ),
        WAIT_S,
        "the second recording's files",
    )
    [record] = [r for r in listed["recordings"] if r["id"] == second["recording_id"]]
    assert record["status"] == "completed", record
    assert record["started_by"] == f"participant:{alice.participant_id}"
