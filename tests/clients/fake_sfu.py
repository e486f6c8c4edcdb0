"""A stand-in SFU for the client's tests: the real signaling protocol, real aiortc peers.

It is not a forwarder: it answers each client's publish offer (and drains
what arrives), and feeds each client a synthetic remote participant's tracks
on the subscribe connection, renegotiating when a test asks. Every peer
gathers on 127.0.0.1 only. Tests drive it through `FakeSfu.sessions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from clients.python.aiortc_internals import instrument_peer_connection
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack
from townhall.contract import (
    ProtocolError,
    TokenClaims,
    TokenError,
    mint_token,
    parse_client_message,
    verify_token,
)

SECRET = "fake-sfu-secret-of-at-least-32-bytes!"
ECHO = {
    "participant_id": "p-echo",
    "name": "Echo",
    "role": "participant",
    "audio_muted": False,
    "video_muted": False,
}


def new_peer_connection() -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    instrument_peer_connection(pc, ice_addresses=("127.0.0.1",))
    return pc


@dataclass
class Offered:
    """A track the fake offers on a subscribe connection."""

    track_id: str
    participant_id: str
    kind: str
    source: str
    transceiver: RTCRtpTransceiver


@dataclass
class FakeSession:
    """One client's session on the fake SFU."""

    claims: TokenClaims
    socket: web.WebSocketResponse
    received: list[dict[str, Any]] = field(default_factory=list)
    publish_pc: RTCPeerConnection | None = None
    published_frames: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    subscribe_pc: RTCPeerConnection = field(default_factory=new_peer_connection)
    offered: list[Offered] = field(default_factory=list)
    answers: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    answer_publish: bool = True
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.socket.send_str(json.dumps(frame))

    async def publish_answer(self, sdp: str, sources: dict[str, str]) -> str:
        self.sources = sources
        pc = self.publish_pc = self.publish_pc or new_peer_connection()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.tasks.append(asyncio.create_task(self._drain(track)))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    async def _drain(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            self.published_frames[track.kind] = self.published_frames.get(track.kind, 0) + 1

    async def offer(self, timeout_s: float = 10.0) -> None:
        """Send the subscribe connection's current state and apply the client's answer."""
        pc = self.subscribe_pc
        await pc.setLocalDescription(await pc.createOffer())
        tracks = [
            {
                "mid": o.transceiver.mid,
                "track_id": o.track_id,
                "participant_id": o.participant_id,
                "kind": o.kind,
                "source": o.source,
            }
            for o in self.offered
            if o.transceiver.direction == "sendonly"
        ]
        await self.send(
            {"type": "subscribe-offer", "sdp": pc.localDescription.sdp, "tracks": tracks}
        )
        answer = await asyncio.wait_for(self.answers.get(), timeout_s)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def add_echo_tracks(self) -> None:
        """Offer the Echo participant's microphone and camera."""
        for kind, track in (
            ("audio", SyntheticAudioTrack()),
            ("video", SyntheticVideoTrack(160, 128)),
        ):
            transceiver = self.subscribe_pc.addTransceiver(track, direction="sendonly")
            source = "microphone" if kind == "audio" else "camera"
            self.offered.append(Offered(f"echo-{kind}", "p-echo", kind, source, transceiver))
        await self.offer()

    async def remove_echo_tracks(self) -> None:
        """Switch Echo's m-sections off, as the SFU does when a publisher leaves."""
        for offered in self.offered:
            offered.transceiver.direction = "inactive"
        await self.offer()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for pc in (self.publish_pc, self.subscribe_pc):
            if pc is not None:
                await pc.close()


class FakeSfu:
    """The fake's signaling socket at ``/sfu/ws`` and a guest join at ``/m/{id}/join``."""

    def __init__(self) -> None:
        self.sessions: dict[str, FakeSession] = {}
        self.joined = asyncio.Queue[FakeSession]()
        self.base_url = ""
        self._count = 0

    def token(self, name: str, meeting_id: str = "m1") -> tuple[str, str]:
        self._count += 1
        participant_id = f"p{self._count}"
        claims = TokenClaims(
            meeting_id, participant_id, f"guest:{participant_id}", name, "participant"
        )
        return participant_id, mint_token(claims, SECRET)

    async def guest_join(self, request: web.Request) -> web.Response:
        body = await request.json()
        participant_id, token = self.token(body["name"], request.match_info["meeting_id"])
        return web.json_response(
            {
                "participant_id": participant_id,
                "token": token,
                "signaling_url": "/sfu/ws",
                "ice_servers": [],
                "status": "joined",
            }
        )

    async def signaling(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        first = await socket.receive()
        try:
            claims = verify_token(parse_client_message(first.data)["token"], SECRET)
        except (ProtocolError, TokenError, KeyError, TypeError) as exc:
            await socket.send_str(
                json.dumps({"type": "error", "code": "unauthorized", "message": str(exc)})
            )
            await socket.close(code=4401)
            return socket
        session = FakeSession(claims, socket)
        self.sessions[claims.participant_id] = session
        me = {**ECHO, "participant_id": claims.participant_id, "name": claims.name}
        await session.send(
            {
                "type": "joined",
                "participant_id": claims.participant_id,
                "meeting_id": claims.meeting_id,
                "name": claims.name,
                "role": claims.role,
                "ice_servers": [],
                "participants": [ECHO, me],
            }
        )
        self.joined.put_nowait(session)
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    break
                frame = parse_client_message(message.data)
                session.received.append(frame)
                if frame["type"] == "publish-offer" and session.answer_publish:
                    sdp = await session.publish_answer(frame["sdp"], frame.get("sources", {}))
                    await session.send({"type": "publish-answer", "sdp": sdp})
                elif frame["type"] == "subscribe-answer":
                    session.answers.put_nowait(frame["sdp"])
                elif frame["type"] == "leave":
                    break
        finally:
            await session.close()
            with contextlib.suppress(Exception):
                await socket.close()
        return socket


@contextlib.asynccontextmanager
async def running_fake_sfu() -> AsyncIterator[FakeSfu]:
    """Serve a FakeSfu on a free loopback port."""
    fake = FakeSfu()
    app = web.Application()
    app.router.add_get("/sfu/ws", fake.signaling)
    app.router.add_post("/m/{meeting_id}/join", fake.guest_join)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.base_url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        await server.close()
