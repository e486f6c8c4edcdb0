"""A stand-in SFU for the client's tests: the real signaling protocol, real aiortc peers.

It is not a forwarder: it answers each client's publish offer (and drains
what arrives), and feeds each client a synthetic remote participant's tracks
on the subscribe connection, renegotiating when a test asks. Every peer
gathers on 127.0.0.1 only. Tests drive it through `FakeSfu.sessions`.

It also stands in for the control plane's side of joining and of the REST
calls a participant makes with its control token: guest and API-key joins,
a lobby (``waiting_room``) with its long-poll, chat over signaling (kept in
``chat``, delivered to everyone or to sender and recipient), the host
actions, each recorded in ``api_calls`` (a mute sends ``moderation``), and
the reconnect endpoint (``rejoins``; ``refuse_rejoin`` refuses).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
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
API_KEY = "fake-api-key"
# The lobby answers a long-poll after at most this long (tests keep waits short).
LOBBY_POLL_CAP_S = 2.0
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


@dataclass
class ApiCall:
    """One REST call a client made: what, where, with which body and token."""

    method: str
    path: str
    body: Any
    query: dict[str, str]
    bearer: str | None


def _error(status: int, code: str, message: str, **details: Any) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "details": details}}, status=status
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


class FakeSfu:
    """The fake's signaling socket at ``/sfu/ws``, joins, the lobby and the REST calls."""

    def __init__(self) -> None:
        self.sessions: dict[str, FakeSession] = {}
        self.joined = asyncio.Queue[FakeSession]()
        self.base_url = ""
        self._count = 0
        # Guests wait in the lobby until `decide` (or a host's admit/deny) says.
        self.waiting_room = False
        self.lobby: dict[str, asyncio.Future[str]] = {}
        self.lobby_polls: list[dict[str, str]] = []
        self.names: dict[str, tuple[str, str]] = {}  # participant id -> (meeting, name)
        self.refuse: web.Response | None = None
        self.chat: list[dict[str, Any]] = []
        self.policy: dict[str, Any] = {"require_waiting_room": False}
        self.api_calls: list[ApiCall] = []
        # Reconnect requests, by participant id; (status, code) refuses them.
        self.rejoins: list[str] = []
        self._closing: set[asyncio.Future[None]] = set()
        self.refuse_rejoin: tuple[int, str] | None = None

    def token(
        self, name: str, meeting_id: str = "m1", role: str = "participant"
    ) -> tuple[str, str]:
        self._count += 1
        participant_id = f"p{self._count}"
        self.names[participant_id] = (meeting_id, name)
        return participant_id, self._mint(participant_id, role)

    def _mint(self, participant_id: str, role: str = "participant") -> str:
        meeting_id, name = self.names[participant_id]
        claims = TokenClaims(
            meeting_id,
            participant_id,
            f"guest:{participant_id}",
            name,
            role,  # type: ignore[arg-type]
        )
        return mint_token(claims, SECRET)

    def _grant(self, participant_id: str, role: str) -> dict[str, Any]:
        meeting_id, name = self.names[participant_id]
        return {
            "participant_id": participant_id,
            "meeting_id": meeting_id,
            "meeting_title": "Fake meeting",
            "name": name,
            "role": role,
            "token": self._mint(participant_id, role),
            "control_token": f"ctl-{participant_id}",
            "signaling_url": "/sfu/ws",
            "ice_servers": [],
            "status": "joined",
        }

    async def guest_join(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.refuse is not None:
            return self.refuse
        meeting_id = request.match_info["meeting_id"]
        participant_id, _token = self.token(body["name"], meeting_id)
        if not self.waiting_room:
            return web.json_response(self._grant(participant_id, "participant"))
        self.lobby[participant_id] = asyncio.get_running_loop().create_future()
        return web.json_response(
            {
                "participant_id": participant_id,
                "meeting_id": meeting_id,
                "meeting_title": "Fake meeting",
                "name": body["name"],
                "role": "participant",
                "control_token": f"ctl-{participant_id}",
                "status": "waiting",
                "lobby_url": f"/api/v1/meetings/{meeting_id}/lobby/{participant_id}",
            }
        )

    async def api_join(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return _error(401, "unauthorized", "a valid API key is needed")
        body = await request.json()
        role = body.get("role", "participant")
        participant_id, _token = self.token(body["name"], request.match_info["meeting_id"], role)
        return web.json_response(self._grant(participant_id, role))

    def decide(self, participant_id: str, decision: str) -> None:
        """Admit (``joined``) or deny (``denied``) someone waiting in the lobby."""
        future = self.lobby.pop(participant_id)
        future.set_result(decision)

    async def lobby_poll(self, request: web.Request) -> web.Response:
        participant_id = request.match_info["participant_id"]
        self.lobby_polls.append(dict(request.query))
        if request.headers.get("Authorization") != f"Bearer ctl-{participant_id}":
            return _error(401, "unauthorized", "wrong control token")
        future = self.lobby.get(participant_id)
        if future is None:
            return _error(404, "not_found", "nobody waits with that id")
        wait = min(float(request.query.get("wait", "0")), LOBBY_POLL_CAP_S)
        try:
            decision = await asyncio.wait_for(asyncio.shield(future), wait)
        except TimeoutError:
            return web.json_response({"status": "waiting"})
        if decision == "denied":
            return web.json_response({"status": "denied", "reason": "not on the list"})
        grant = self._grant(participant_id, "participant")
        return web.json_response(
            {k: grant[k] for k in ("status", "token", "signaling_url", "ice_servers")}
        )

    async def _record(self, request: web.Request) -> ApiCall:
        body = await request.json() if request.can_read_body else None
        header = request.headers.get("Authorization", "")
        call = ApiCall(
            request.method,
            request.path,
            body,
            dict(request.query),
            header.removeprefix("Bearer ") if header else None,
        )
        self.api_calls.append(call)
        return call

    async def api(self, request: web.Request) -> web.Response:
        """Host actions and chat over REST: recorded, answered as the real API would."""
        call = await self._record(request)
        if call.bearer is None or not call.bearer.startswith("ctl-"):
            return _error(401, "unauthorized", "a control token is needed")
        tail = request.match_info["tail"]
        parts = tail.split("/")
        if tail == "chat" and call.method == "GET":
            return web.json_response({"messages": self.chat, "next_cursor": None})
        if tail == "lobby" and call.method == "GET":
            waiting = [
                {"participant_id": p, "name": self.names[p][1], "email": None, "since": _now()}
                for p in self.lobby
            ]
            return web.json_response({"waiting": waiting})
        if tail == "policy":
            self.policy.update(call.body or {})
            return web.json_response(self.policy)
        if tail == "participants" and call.method == "GET":
            people = [{"participant_id": p, "status": "joined"} for p in self.sessions]
            return web.json_response({"participants": people})
        if parts[0] == "lobby" and len(parts) == 3 and parts[1] in self.lobby:
            self.decide(parts[1], "joined" if parts[2] == "admit" else "denied")
            return web.json_response({"participant_id": parts[1], "status": parts[2]})
        if parts[:1] == ["participants"] and parts[2:] == ["reconnect"]:
            return self.reconnect(parts[1], call.bearer)
        if parts[0] == "participants" and len(parts) == 3:
            session = self.sessions.get(parts[1])
            if session is None:
                return _error(404, "not_found", f"no participant {parts[1]}")
            if parts[2] == "mute":
                frame = {"type": "moderation", "action": "mute", "kind": call.body["kind"]}
                await session.send({**frame, "by": call.bearer.removeprefix("ctl-")})
            return web.json_response({"participant_id": parts[1], "action": parts[2]})
        if tail == "breakout-rooms" and call.method in ("POST", "GET"):
            body = call.body or {}
            assignments = body.get("assignments", {})
            rooms = [
                {
                    "id": f"r{index + 1}",
                    "name": room["name"],
                    "participants": [p for p, i in assignments.items() if i == index],
                }
                for index, room in enumerate(body.get("rooms", []))
            ]
            return web.json_response({"rooms": rooms, "closes_at": None})
        if tail == "breakout-rooms" and call.method == "DELETE":
            return web.json_response({"rooms": [], "closes_at": _now()})
        return web.json_response({})

    def reconnect(self, participant_id: str, bearer: str) -> web.Response:
        """``POST .../participants/{id}/reconnect``: a fresh token, unless ``refuse_rejoin``."""
        self.rejoins.append(participant_id)
        if bearer != f"ctl-{participant_id}":
            return _error(403, "forbidden", "a participant may only reconnect themselves")
        if self.refuse_rejoin is not None:
            status, code = self.refuse_rejoin
            return _error(status, code, f"refused ({code})")
        if participant_id not in self.names:
            return _error(404, "participant_not_found", f"no participant {participant_id}")
        grant = self._grant(participant_id, "participant")
        return web.json_response({k: grant[k] for k in ("token", "signaling_url", "ice_servers")})

    async def deliver_chat(self, sender: FakeSession, frame: dict[str, Any]) -> None:
        message = {
            "id": f"c{len(self.chat) + 1}",
            "sender_id": sender.claims.participant_id,
            "sender_name": sender.claims.name,
            "text": frame["text"],
            "to": frame.get("to"),
            "sent_at": _now(),
        }
        self.chat.append(message)
        audience = None if message["to"] is None else {message["sender_id"], message["to"]}
        for participant_id, session in list(self.sessions.items()):
            if audience is None or participant_id in audience:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await session.send({"type": "chat", "message": message})

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
                "permissions": claims.permissions.to_claim(),
                "room": None,
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
                elif frame["type"] == "chat":
                    await self.deliver_chat(session, frame)
                elif frame["type"] == "leave":
                    break
        finally:
            if self.sessions.get(claims.participant_id) is session:
                del self.sessions[claims.participant_id]
            # aiohttp may cancel this handler once the client hangs up: finish closing anyway.
            closing = asyncio.ensure_future(session.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            await asyncio.shield(closing)
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
    app.router.add_post("/api/v1/meetings/{meeting_id}/join", fake.api_join)
    app.router.add_get("/api/v1/meetings/{meeting_id}/lobby/{participant_id}", fake.lobby_poll)
    app.router.add_route("*", "/api/v1/meetings/{meeting_id}/{tail:.+}", fake.api)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.base_url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        await server.close()
        if fake._closing:
            await asyncio.wait(fake._closing, timeout=10)
