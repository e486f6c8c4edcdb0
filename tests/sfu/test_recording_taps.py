"""Recording taps: the SFU hands every forwarded packet to the node's Recorder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from clients.python import ClientOptions, Participant, RtpTap
from sfu.config import SfuConfig
from sfu.node import SfuNode
from townhall.contract import (
    Permissions,
    RecordingRefused,
    TappedTrack,
    TokenClaims,
    mint_token,
)

from .test_media_plane import ControlSpy, Frames, connect

SECRET = "recording-taps-test-secret-32-bytes!!"


class KeptTap:
    """A TrackTap that keeps what it is given (the recorder's side of the seam)."""

    def __init__(self, track: TappedTrack) -> None:
        self.track = track
        self.payloads: list[bytes] = []
        self.mutes: list[bool] = []
        self.closed = False

    def packet(
        self, sequence_number: int, timestamp: int, marker: bool, payload: bytes, arrival_s: float
    ) -> None:
        self.payloads.append(payload)

    def muted(self, muted: bool, at_s: float) -> None:
        self.mutes.append(muted)

    def close(self, at_s: float) -> None:
        self.closed = True


class KeptSession:
    def __init__(self, recording_id: str, options: dict[str, Any]) -> None:
        self.recording_id = recording_id
        self.options = options
        self.taps: dict[str, KeptTap] = {}
        self.stopped = False

    def track(self, track: TappedTrack) -> KeptTap | None:
        if track.kind == "video" and not self.options.get("include_video", True):
            return None
        self.taps[track.track_id] = KeptTap(track)
        return self.taps[track.track_id]

    async def stop(self) -> None:
        self.stopped = True


class KeptRecorder:
    def __init__(self) -> None:
        self.sessions: list[KeptSession] = []

    def start(self, meeting_id: str, recording_id: str, options: dict[str, Any]) -> KeptSession:
        self.sessions.append(KeptSession(recording_id, options))
        return self.sessions[-1]


class RecordingControl(ControlSpy):
    """Control's side: allows recording to whoever asks, starting it on the node."""

    def __init__(self) -> None:
        super().__init__()
        self.node: SfuNode | None = None
        self.requests: list[tuple[str, str]] = []
        self.refuse = None

    async def recording_requested(self, meeting_id: str, participant_id: str, action: str) -> None:
        self.requests.append((participant_id, action))
        if participant_id == "nora":
            raise RecordingRefused("recording is limited to hosts in this meeting")
        assert self.node is not None
        if action == "start":
            await self.node.start_recording(meeting_id, "rec1", {})
        else:
            await self.node.stop_recording(meeting_id)


@pytest.fixture
async def node() -> AsyncIterator[tuple[SfuNode, RecordingControl, KeptRecorder, str]]:
    control = RecordingControl()
    sfu = SfuNode(SfuConfig(), SECRET, control)
    control.node = sfu
    recorder = KeptRecorder()
    sfu.recorder = recorder
    app = web.Application()
    app.add_routes(sfu.routes())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield sfu, control, recorder, str(server.make_url("/sfu/ws"))
    finally:
        await sfu.close()
        await server.close()


def token(participant: str, **permissions: bool) -> str:
    claims = TokenClaims(
        meeting_id="m1",
        participant_id=participant,
        identity=participant,
        name=participant.title(),
        role="participant",
        permissions=Permissions(**permissions),
    )
    return mint_token(claims, SECRET)


async def test_every_forwarded_payload_reaches_the_recording(
    node: tuple[SfuNode, RecordingControl, KeptRecorder, str],
) -> None:
    sfu, _, recorder, url = node
    bob_tap = RtpTap(record=True)
    alice = await Participant.connect(url, token("alice"), options=ClientOptions(decode=False))
    bob = await Participant.connect(
        url, token("bob"), options=ClientOptions(decode=False, receive_tap=bob_tap)
    )
    async with aiohttp.ClientSession() as http:
        watcher: Frames = await connect(http, url, token("watcher"))
        try:
            await alice.publish(audio=AudioStreamTrack(), video=VideoStreamTrack())
            await bob.wait_until(lambda: len(bob.remote_tracks) == 2, what="alice's tracks")
            assert await sfu.start_recording("m1", "rec1", {"include_video": True})
            assert not await sfu.start_recording("m1", "rec2", {})  # one at a time
            started = await watcher.next("recording")
            assert started["state"] == "started" and started["recording_id"] == "rec1"
            session = recorder.sessions[0]
            await bob.publish(audio=AudioStreamTrack())  # published mid-recording: tapped too
            for _ in range(60):
                if len(session.taps) == 3 and all(
                    len(t.payloads) > 20 for t in session.taps.values()
                ):
                    break
                await asyncio.sleep(0.1)
            assert {t.track.participant_id for t in session.taps.values()} == {"alice", "bob"}
            alice_taps = [t for t in session.taps.values() if t.track.participant_id == "alice"]
            assert {t.track.codec.lower() for t in alice_taps} == {"opus", "vp8"}
            assert all(t.track.participant_name == "Alice" for t in alice_taps)
            recorded = {p for t in alice_taps for p in t.payloads}
            forwarded = {p.payload for p in bob_tap.recorded if p.payload}
            assert recorded & forwarded  # the same bytes went to the file and to Bob
            assert await sfu.stop_recording("m1") == "rec1"
            assert session.stopped and all(t.closed for t in session.taps.values())
            stopped = await watcher.next("recording", lambda f: f["state"] == "stopped")
            assert stopped["recording_id"] == "rec1"
        finally:
            await bob.leave()
            await alice.leave()


async def test_a_host_mute_is_a_gap_in_the_recording(
    node: tuple[SfuNode, RecordingControl, KeptRecorder, str],
) -> None:
    sfu, _, recorder, url = node
    alice = await Participant.connect(url, token("alice"), options=ClientOptions(decode=False))
    try:
        await alice.publish(audio=AudioStreamTrack())
        assert await sfu.start_recording("m1", "rec1", {})
        tap = None
        for _ in range(50):
            taps = list(recorder.sessions[0].taps.values())
            if taps and len(taps[0].payloads) > 10:
                tap = taps[0]
                break
            await asyncio.sleep(0.1)
        assert tap is not None
        await sfu.mute_participant("m1", "alice", "audio")
        await asyncio.sleep(0.1)
        count = len(tap.payloads)
        await asyncio.sleep(0.5)
        assert len(tap.payloads) == count  # nothing recorded while muted
        assert tap.mutes == [True]
    finally:
        await alice.leave()


async def test_recording_over_signaling_needs_the_permission_and_the_policy(
    node: tuple[SfuNode, RecordingControl, KeptRecorder, str],
) -> None:
    sfu, control, recorder, url = node
    async with aiohttp.ClientSession() as http:
        plain = await connect(http, url, token("paul"))
        await plain.ws.send_json({"type": "record", "action": "start"})
        assert (await plain.next("error"))["code"] == "forbidden"
        assert control.requests == []  # refused by the SFU, from the token alone
        nora = await connect(http, url, token("nora", record=True))
        await nora.ws.send_json({"type": "record", "action": "start"})
        error = await nora.next("error")
        assert error == {
            "type": "error",
            "code": "forbidden",
            "message": "recording is limited to hosts in this meeting",
        }
        host = await connect(http, url, token("hana", record=True))
        await host.ws.send_json({"type": "record", "action": "start"})
        await host.next("recording", lambda f: f["state"] == "started")
        late = await connect(http, url, token("late"))
        joined = late.of("joined")[0]
        assert joined["recording"] == {"recording_id": "rec1"}  # newcomers see it at once
        await host.ws.send_json({"type": "record", "action": "stop"})
        await host.next("recording", lambda f: f["state"] == "stopped")
        assert recorder.sessions[0].stopped
