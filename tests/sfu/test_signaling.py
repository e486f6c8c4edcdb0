"""The signaling socket refuses bad input with typed errors and keeps the meeting going."""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from clients.python import ClientOptions, Participant
from clients.python.messages import ErrorMessage
from sfu.config import SfuConfig
from sfu.node import SfuNode
from townhall.contract import Permissions, TokenClaims, mint_token

SECRET = "signaling-test-secret-of-32-bytes!!"


@pytest.fixture
async def node() -> AsyncIterator[tuple[SfuNode, str]]:
    sfu = SfuNode(SfuConfig(), SECRET)
    app = web.Application()
    app.add_routes(sfu.routes())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield sfu, str(server.make_url("/sfu/ws"))
    finally:
        await sfu.close()
        await server.close()


def token(participant: str, meeting: str = "m1", **permissions: bool) -> str:
    claims = TokenClaims(
        meeting_id=meeting,
        participant_id=participant,
        identity=participant,
        name=participant.title(),
        role="participant",
        permissions=Permissions(**permissions),
    )
    return mint_token(claims, SECRET)


async def first_reply(url: str, frame: str) -> tuple[dict[str, Any], int | None]:
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_str(frame)
        reply = await ws.receive_json(timeout=5)
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        return reply, ws.close_code


async def test_forged_token_is_refused_with_4401(node: tuple[SfuNode, str]) -> None:
    sfu, url = node
    claims = TokenClaims("m1", "mallory", "mallory", "Mallory", "host")
    forged = mint_token(claims, "not-the-secret-32-bytes-long!!!!")
    reply, code = await first_reply(url, f'{{"type": "join", "token": "{forged}"}}')
    assert reply["type"] == "error" and reply["code"] == "unauthorized"
    assert code == 4401
    assert sfu.rooms == {}


async def test_malformed_first_frame_is_a_protocol_error(node: tuple[SfuNode, str]) -> None:
    _, url = node
    reply, code = await first_reply(url, "{not json")
    assert (reply["code"], code) == ("protocol_error", 4400)
    reply, code = await first_reply(url, '{"type": "leave"}')
    assert (reply["code"], code) == ("protocol_error", 4400)


async def join_raw(url: str, http: aiohttp.ClientSession, tok: str) -> Any:
    ws = await http.ws_connect(url)
    await ws.send_json({"type": "join", "token": tok})
    joined = await ws.receive_json(timeout=5)
    assert joined["type"] == "joined"
    return ws


async def test_bad_frames_after_join_are_errors_that_keep_the_session(
    node: tuple[SfuNode, str],
) -> None:
    sfu, url = node
    async with aiohttp.ClientSession() as http:
        ws = await join_raw(url, http, token("alice"))
        await ws.send_json({"type": "publish-offer", "sdp": "v=0\r\nthis is not sdp\r\n"})
        reply = await ws.receive_json(timeout=5)
        assert (reply["type"], reply.get("code")) == ("error", "negotiation_failed"), reply
        await ws.send_json({"type": "subscribe-answer", "sdp": "v=0\r\n"})
        reply = await ws.receive_json(timeout=5)
        assert reply["code"] == "negotiation_failed"
        await ws.send_json({"type": "mute", "kind": "audio", "muted": True})
        update = await ws.receive_json(timeout=5)
        assert update["type"] == "participant-updated"
        assert update["participant"]["audio_muted"] is True
        assert "alice" in sfu.rooms["m1"].participants
        await ws.send_json({"type": "fly"})
        reply = await ws.receive_json(timeout=5)
        assert reply["code"] == "protocol_error"
        await ws.close()


async def test_a_participant_without_publish_permission_cannot_publish(
    node: tuple[SfuNode, str],
) -> None:
    sfu, url = node
    viewer = await Participant.connect(url, token("vera", publish=False))
    errors: list[ErrorMessage] = []
    viewer.add_listener(lambda e: errors.append(e) if isinstance(e, ErrorMessage) else None)
    try:
        await viewer.publish(audio=AudioStreamTrack(), video=VideoStreamTrack())
        await viewer.wait_until(lambda: len(errors) == 2, what="two refusals")
        assert {e.code for e in errors} == {"forbidden"}
        assert "may not publish microphone" in errors[0].message
        await asyncio.sleep(0.5)
        assert sfu.rooms["m1"].tracks == []
    finally:
        await viewer.leave()


async def test_malformed_rtp_and_rtcp_are_dropped_and_counted(
    node: tuple[SfuNode, str],
) -> None:
    sfu, url = node
    alice = await Participant.connect(url, token("alice"), options=ClientOptions())
    bob = await Participant.connect(url, token("bob"), options=ClientOptions(decode=False))
    try:
        await alice.publish(audio=AudioStreamTrack(), video=VideoStreamTrack())
        await bob.wait_until(lambda: len(bob.remote_tracks) == 2, what="alice's tracks")
        await asyncio.sleep(1.0)
        assert alice.publish_pc is not None
        transport = alice.publish_pc.getTransceivers()[0].sender.transport
        header = struct.pack("!BBHII", 0xA0, 111, 1, 0, 1234)  # padding bit set...
        await transport._send_rtp(header + b"payload" + b"\xff")  # ...and a bad length
        await transport._send_rtp(bytes([0x80, 200, 0x00, 0x20]) + b"\x00" * 12)  # short SR
        before = sfu.counters.rtp_packets_forwarded
        for _ in range(50):
            if sfu.counters.rtp_malformed and sfu.counters.rtcp_malformed:
                break
            await asyncio.sleep(0.1)
        assert sfu.counters.rtp_malformed == 1
        assert sfu.counters.rtcp_malformed == 1
        await asyncio.sleep(0.5)
        assert sfu.counters.rtp_packets_forwarded > before  # the meeting goes on
    finally:
        await bob.leave()
        await alice.leave()


@pytest.mark.parametrize(
    ("sdp", "message"),
    [
        ("", "must start with 'v=0'"),
        ("v=0\r\nthis is not sdp\r\n", "line 2 is not"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n", "no audio or video m-section"),
        ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "lacks ice-ufrag"),
    ],
)
def test_implausible_sdp_is_refused_before_aiortc(sdp: str, message: str) -> None:
    from sfu.errors import NegotiationFailed
    from sfu.sdp import check_description

    with pytest.raises(NegotiationFailed, match=message):
        check_description(sdp, "publish offer")


async def test_a_replaced_connection_is_told_why_it_ends(node: tuple[SfuNode, str]) -> None:
    sfu, url = node
    async with aiohttp.ClientSession() as http:
        first = await join_raw(url, http, token("alice"))
        second = await join_raw(url, http, token("alice"))
        bye = await first.receive_json(timeout=5)
        assert bye == {"type": "bye", "reason": "replaced by a new connection"}
        assert list(sfu.rooms["m1"].participants) == ["alice"]
        await second.close()
        await first.close()


async def test_the_sfu_runs_no_decoder_while_it_forwards(node: tuple[SfuNode, str]) -> None:
    sfu, url = node
    quiet = ClientOptions(decode=False)  # so that any decoder thread would be the SFU's
    alice = await Participant.connect(url, token("alice"), options=quiet)
    bob = await Participant.connect(url, token("bob"), options=quiet)
    try:
        await alice.publish(audio=AudioStreamTrack(), video=VideoStreamTrack())
        await bob.wait_until(lambda: len(bob.remote_tracks) == 2, what="alice's tracks")
        for _ in range(50):
            if sfu.counters.rtp_packets_forwarded > 100:
                break
            await asyncio.sleep(0.1)
        assert sfu.counters.rtp_packets_forwarded > 100
        decoders = [t.name for t in threading.enumerate() if t.name.endswith("-decoder")]
        assert decoders == []
    finally:
        await bob.leave()
        await alice.leave()
