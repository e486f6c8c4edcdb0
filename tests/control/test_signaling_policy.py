"""End to end with ``townhall serve``: policy and tokens as the SFU's signaling socket sees them.

Raw WebSocket frames (the contract's protocol), so that every refusal is seen
exactly as a client gets it: an ``error`` frame and close code, or a ``bye``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import jwt
import pytest
from aiortc import RTCPeerConnection

from control.tokens import mint_control_token
from tests.conftest import TownhallServer
from townhall.contract import TokenClaims, mint_token

FRAME_TIMEOUT_S = 10.0


def secret(server: TownhallServer) -> str:
    stored = json.loads((server.data_dir / "secrets.json").read_text())
    return str(stored["token_secret"])


def api(meeting_id: str, suffix: str = "") -> str:
    return f"/api/v1/meetings/{meeting_id}{suffix}"


def meeting_with(server: TownhallServer, **policy: Any) -> str:
    meeting_id = str(server.create_meeting()["id"])
    if policy:
        server.api("PATCH", api(meeting_id, "/policy"), policy)
    return meeting_id


def join(server: TownhallServer, meeting_id: str, name: str, **fields: Any) -> dict[str, Any]:
    grant: dict[str, Any] = server.api("POST", api(meeting_id, "/join"), {"name": name, **fields})
    return grant


class Socket:
    """One signaling WebSocket, read frame by frame with a bound on every wait."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.ws.send_json(frame)

    async def expect(self, kind: str, timeout_s: float = FRAME_TIMEOUT_S) -> dict[str, Any]:
        """The next frame of this type (others are kept in ``seen``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind!r} frame within {timeout_s} s; saw {self.seen}")
            message = await self.ws.receive(timeout=remaining)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"socket ended ({message.type}) before {kind!r}: {self.seen}")
            frame: dict[str, Any] = json.loads(message.data)
            self.seen.append(frame)
            if frame["type"] == kind:
                return frame

    async def closed(self, timeout_s: float = FRAME_TIMEOUT_S) -> int | None:
        """Read until the socket closes; its close code."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"socket still open after {timeout_s} s: {self.seen}"
            message = await self.ws.receive(timeout=remaining)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return self.ws.close_code
            if message.type == aiohttp.WSMsgType.TEXT:
                self.seen.append(json.loads(message.data))


@asynccontextmanager
async def connected(url: str, token: str) -> AsyncIterator[Socket]:
    """Open the signaling socket and send the join frame."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws,
    ):
        socket = Socket(ws)
        await socket.send(type="join", token=token)
        yield socket


@asynccontextmanager
async def joined(grant: dict[str, Any]) -> AsyncIterator[Socket]:
    async with connected(grant["signaling_url"], grant["token"]) as socket:
        frame = await socket.expect("joined")
        assert frame["participant_id"] == grant["participant_id"]
        yield socket


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def tampered(token: str, **claims: Any) -> str:
    """Payload edited, signature kept."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{b64({**decoded, **claims})}.{signature}"


def forgeries(server: TownhallServer, grant: dict[str, Any]) -> dict[str, str]:
    key = secret(server)
    claims = TokenClaims(
        meeting_id=grant["meeting_id"],
        participant_id=grant["participant_id"],
        identity="user:x",
        name="Mallory",
        role="host",
    )
    payload = jwt.decode(grant["token"], options={"verify_signature": False})
    return {
        "expired": mint_token(claims, key, ttl_s=-30),
        "wrong key": mint_token(claims, "another-secret-0123456789abcdef012345"),
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}.",
        "tampered role": tampered(grant["token"], role="host"),
        "tampered meeting": tampered(grant["token"], mtg="another-meeting"),
        "control token": grant["control_token"],
        "control token re-signed": mint_control_token(
            grant["meeting_id"], grant["participant_id"], "host", key
        ),
        "garbage": "not.a.token",
    }


FORGERIES = [
    "expired",
    "wrong key",
    "alg none",
    "tampered role",
    "tampered meeting",
    "control token",
    "control token re-signed",
    "garbage",
]


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_forged_join_tokens_are_refused_with_4401(
    server: TownhallServer, forgery: str
) -> None:
    meeting_id = meeting_with(server)
    grant = join(server, meeting_id, "Ada")
    async with connected(grant["signaling_url"], forgeries(server, grant)[forgery]) as socket:
        error = await socket.expect("error")
        assert error["code"] == "unauthorized"
        assert error["message"]
        assert await socket.closed() == 4401
        assert not any(frame["type"] == "joined" for frame in socket.seen)


def test_join_tokens_are_not_control_tokens(server: TownhallServer) -> None:
    meeting_id = meeting_with(server)
    grant = join(server, meeting_id, "Ada", role="host")
    status, body = server.request("GET", api(meeting_id, "/policy"), api_key=grant["token"])
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    other = meeting_with(server)
    status, body = server.request("GET", api(other, "/policy"), api_key=grant["control_token"])
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, _ = server.request("GET", api(meeting_id, "/policy"), api_key=grant["control_token"])
    assert status == 200


@pytest.mark.parametrize("ending", ["end", "delete"])
async def test_a_valid_token_for_a_closed_meeting_is_sent_away(
    server: TownhallServer, ending: str
) -> None:
    meeting_id = meeting_with(server)
    grant = join(server, meeting_id, "Late")
    if ending == "end":
        server.api("POST", api(meeting_id, "/end"))
    else:
        server.api("DELETE", api(meeting_id))
    async with connected(grant["signaling_url"], grant["token"]) as socket:
        error = await socket.expect("error")
        assert error["code"] == "access_denied"
        assert error["message"] == (
            "meeting ended" if ending == "end" else "this meeting does not exist"
        )
        assert await socket.closed() == 4403


async def test_ending_a_meeting_says_bye_to_everyone(server: TownhallServer) -> None:
    meeting_id = meeting_with(server)
    host = join(server, meeting_id, "Host", role="host")
    async with joined(host) as socket:
        status, _ = server.request("POST", api(meeting_id, "/end"), api_key=host["control_token"])
        assert status == 200
        assert (await socket.expect("bye"))["reason"] == "meeting ended"


async def test_chat_for_hosts_only_is_refused_over_the_socket(server: TownhallServer) -> None:
    meeting_id = meeting_with(server)
    host = join(server, meeting_id, "Host", role="host")
    ada = join(server, meeting_id, "Ada")
    async with joined(host) as host_socket, joined(ada) as ada_socket:
        await ada_socket.send(type="chat", text="before")
        assert (await host_socket.expect("chat"))["message"]["text"] == "before"
        server.api("PATCH", api(meeting_id, "/policy"), {"chat_permissions": "host"})
        changed = await ada_socket.expect("permissions-changed")
        assert changed["permissions"]["chat"] is False
        await ada_socket.send(type="chat", text="after")
        error = await ada_socket.expect("error")
        assert error["code"] == "forbidden"
        await host_socket.send(type="chat", text="hosts may")
        assert (await ada_socket.expect("chat"))["message"]["text"] == "hosts may"
    history = server.api("GET", api(meeting_id, "/chat"))
    assert [m["text"] for m in history["messages"]] == ["before", "hosts may"]


async def test_a_blocked_participant_is_removed_mid_meeting(server: TownhallServer) -> None:
    meeting_id = meeting_with(server)
    host = join(server, meeting_id, "Host", role="host")
    eve = join(server, meeting_id, "Eve", email="eve@example.test")
    async with joined(host) as host_socket, joined(eve) as eve_socket:
        server.api("PATCH", api(meeting_id, "/policy"), {"blocked_users": ["eve@example.test"]})
        assert (await eve_socket.expect("bye"))["reason"] == "blocked by the host"
        left = await host_socket.expect("participant-left")
        assert left["participant_id"] == eve["participant_id"]
    status, body = server.request(
        "POST", api(meeting_id, "/join"), {"name": "Eve", "email": "eve@example.test"}
    )
    assert (status, body["error"]["details"]["rule"]) == (403, "blocked_users")
    # Her join token is still valid for minutes: it does not bring her back.
    async with connected(eve["signaling_url"], eve["token"]) as socket:
        error = await socket.expect("error")
        assert (error["code"], error["message"]) == ("access_denied", "blocked by the host")
        assert await socket.closed() == 4403
        assert [f["type"] for f in socket.seen] == ["error"]  # never "joined"


async def test_leaving_the_allowed_domains_removes_non_hosts(server: TownhallServer) -> None:
    meeting_id = meeting_with(server)
    host = join(server, meeting_id, "Host", role="host")
    bob = join(server, meeting_id, "Bob", email="bob@eu.example.test")
    async with joined(host), joined(bob) as bob_socket:
        server.api("PATCH", api(meeting_id, "/policy"), {"allowed_domains": ["example.test"]})
        assert "domain" in (await bob_socket.expect("bye"))["reason"]


async def test_remove_from_rest_says_bye_with_the_reason(server: TownhallServer) -> None:
    meeting_id = meeting_with(server)
    host = join(server, meeting_id, "Host", role="host")
    bob = join(server, meeting_id, "Bob")
    async with joined(bob) as bob_socket:
        status, _ = server.request(
            "POST",
            api(meeting_id, f"/participants/{bob['participant_id']}/remove"),
            {"reason": "off topic"},
            api_key=host["control_token"],
        )
        assert status == 200
        assert (await bob_socket.expect("bye"))["reason"] == "off topic"


async def screen_offer() -> str:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("video", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


async def test_screen_share_for_hosts_only_refuses_a_participants_screen(
    server: TownhallServer,
) -> None:
    meeting_id = meeting_with(server, screen_share_permissions="host")
    ada = join(server, meeting_id, "Ada")
    sdp = await asyncio.wait_for(screen_offer(), 20)
    async with joined(ada) as socket:
        mid = next(line.split(":", 1)[1] for line in sdp.splitlines() if line.startswith("a=mid:"))
        await socket.send(type="publish-offer", sdp=sdp, sources={mid: "screen"})
        answer = await socket.expect("publish-answer")
        assert "a=inactive" in answer["sdp"]
        error = await socket.expect("error")
        assert error["code"] == "forbidden"
        assert "screen" in error["message"]


async def test_recording_for_hosts_only_is_refused_to_a_participant(
    server: TownhallServer,
) -> None:
    meeting_id = meeting_with(server)
    ada = join(server, meeting_id, "Ada")
    async with joined(ada) as socket:
        await socket.send(type="record", action="start")
        assert (await socket.expect("error"))["code"] == "forbidden"


async def test_the_lobby_end_to_end(server: TownhallServer) -> None:
    meeting_id = meeting_with(server, require_waiting_room=True)
    host = join(server, meeting_id, "Host", role="host")
    async with joined(host) as host_socket:
        assert (await host_socket.expect("lobby"))["waiting"] == []
        status, guest = server.request(
            "POST", f"/m/{meeting_id}/join", {"name": "Grace"}, anonymous=True
        )
        assert (status, guest["status"]) == (200, "waiting")
        lobby = await host_socket.expect("lobby")
        assert [w["name"] for w in lobby["waiting"]] == ["Grace"]
        pid = guest["participant_id"]
        status, _ = server.request(
            "POST", api(meeting_id, f"/lobby/{pid}/admit"), {}, api_key=host["control_token"]
        )
        assert status == 200
        assert (await host_socket.expect("lobby"))["waiting"] == []
        status, standing = server.request(
            "GET", api(meeting_id, f"/lobby/{pid}?wait=5"), api_key=guest["control_token"]
        )
        assert standing["status"] == "joined"
        grant = {**guest, "token": standing["token"]}
        async with joined(grant):
            arrived = await host_socket.expect("participant-joined")
            assert arrived["participant"]["name"] == "Grace"
