"""The SFU's MediaPlane: what the control plane asks of a meeting, seen by real clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from clients.python import ClientOptions, Participant
from sfu.config import SfuConfig
from sfu.node import SfuNode
from townhall.contract import ChatRefused, Permissions, TokenClaims, mint_token

SECRET = "media-plane-test-secret-of-32-bytes!"
QUIET = ClientOptions(decode=False)


class ControlSpy:
    """The control plane's side of the seam: records what the SFU reports."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.refuse: ChatRefused | None = None

    async def participant_connected(self, meeting_id: str, participant_id: str) -> None:
        self.calls.append(("connected", meeting_id, participant_id))

    async def participant_disconnected(
        self, meeting_id: str, participant_id: str, reason: str
    ) -> None:
        self.calls.append(("disconnected", meeting_id, participant_id, reason))

    async def chat_posted(
        self, meeting_id: str, sender_id: str, text: str, to: str | None
    ) -> dict[str, Any]:
        if self.refuse is not None:
            raise self.refuse
        self.calls.append(("chat", meeting_id, sender_id, text))
        return {
            "id": "c1",
            "sender_id": sender_id,
            "sender_name": sender_id.title(),
            "text": text,
            "to": to,
            "sent_at": "2026-11-29T17:00:00+00:00",
        }


@pytest.fixture
async def node() -> AsyncIterator[tuple[SfuNode, ControlSpy, str]]:
    events = ControlSpy()
    sfu = SfuNode(SfuConfig(), SECRET, events)
    app = web.Application()
    app.add_routes(sfu.routes())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield sfu, events, str(server.make_url("/sfu/ws"))
    finally:
        await sfu.close()
        await server.close()


def token(participant: str, role: str = "participant", **permissions: bool) -> str:
    claims = TokenClaims(
        meeting_id="m1",
        participant_id=participant,
        identity=participant,
        name=participant.title(),
        role=role,  # type: ignore[arg-type]
        permissions=Permissions(**permissions),
    )
    return mint_token(claims, SECRET)


class Frames:
    """A raw signaling connection that keeps every frame it receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(message.json())

    async def next(
        self,
        kind: str,
        match: Callable[[dict[str, Any]], bool] = lambda f: True,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        for _ in range(int(timeout / 0.05)):
            for frame in self.frames:
                if frame["type"] == kind and match(frame):
                    return frame
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {kind!r} frame; got {[f['type'] for f in self.frames]}")

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]


async def connect(http: aiohttp.ClientSession, url: str, tok: str) -> Frames:
    ws = await http.ws_connect(url)
    await ws.send_json({"type": "join", "token": tok})
    frames = Frames(ws)
    await frames.next("joined")
    return frames


async def test_chat_over_signaling_is_kept_by_control_and_delivered(
    node: tuple[SfuNode, ControlSpy, str],
) -> None:
    _, events, url = node
    async with aiohttp.ClientSession() as http:
        alice, bob, carol = [await connect(http, url, token(n)) for n in ("alice", "bob", "carol")]
        await alice.ws.send_json({"type": "chat", "text": "hello all"})
        for who in (alice, bob, carol):
            frame = await who.next("chat")
            assert frame["message"]["text"] == "hello all"
        await alice.ws.send_json({"type": "chat", "text": "psst", "to": "bob"})
        await bob.next("chat", lambda f: f["message"]["text"] == "psst")
        await alice.next("chat", lambda f: f["message"]["text"] == "psst")
        await asyncio.sleep(0.2)
        assert [f["message"]["text"] for f in carol.of("chat")] == ["hello all"]
        assert ("chat", "m1", "alice", "hello all") in events.calls
        events.refuse = ChatRefused("slow down", "rate_limited")
        await alice.ws.send_json({"type": "chat", "text": "again"})
        error = await alice.next("error")
        assert (error["code"], error["message"]) == ("rate_limited", "slow down")


async def test_chat_without_permission_is_refused_by_the_sfu(
    node: tuple[SfuNode, ControlSpy, str],
) -> None:
    _, events, url = node
    async with aiohttp.ClientSession() as http:
        mute = await connect(http, url, token("quiet", chat=False))
        await mute.ws.send_json({"type": "chat", "text": "let me speak"})
        error = await mute.next("error")
        assert error["code"] == "forbidden"
        assert not [c for c in events.calls if c[0] == "chat"]


async def test_joins_and_leaves_are_reported_with_the_reason(
    node: tuple[SfuNode, ControlSpy, str],
) -> None:
    sfu, events, url = node
    async with aiohttp.ClientSession() as http:
        alice = await connect(http, url, token("alice"))
        bob = await connect(http, url, token("bob"))
        assert await sfu.remove_participant("m1", "bob", "removed by the host")
        bye = await bob.next("bye")
        assert bye["reason"] == "removed by the host"
        left = await alice.next("participant-left")
        assert left["participant_id"] == "bob"
        for _ in range(40):
            if ("disconnected", "m1", "bob", "removed by the host") in events.calls:
                break
            await asyncio.sleep(0.05)
        assert ("connected", "m1", "alice") in events.calls
        assert ("disconnected", "m1", "bob", "removed by the host") in events.calls
        assert [p["participant_id"] for p in sfu.roster("m1")] == ["alice"]
        assert not await sfu.remove_participant("m1", "nobody", "x")


async def test_permissions_change_at_once(node: tuple[SfuNode, ControlSpy, str]) -> None:
    sfu, _, url = node
    async with aiohttp.ClientSession() as http:
        alice = await connect(http, url, token("alice"))
        quiet = Permissions(chat=False)
        assert await sfu.set_permissions("m1", "alice", "viewer", quiet)
        changed = await alice.next("permissions-changed")
        assert changed["role"] == "viewer" and changed["permissions"]["chat"] is False
        await alice.ws.send_json({"type": "chat", "text": "still here?"})
        assert (await alice.next("error"))["code"] == "forbidden"


async def test_end_meeting_says_bye_to_everyone(node: tuple[SfuNode, ControlSpy, str]) -> None:
    sfu, _, url = node
    async with aiohttp.ClientSession() as http:
        people = [await connect(http, url, token(n)) for n in ("alice", "bob")]
        await sfu.end_meeting("m1", "meeting ended")
        for person in people:
            assert (await person.next("bye"))["reason"] == "meeting ended"
        assert sfu.rooms == {}


async def packets_from(listener: Participant, publisher: str, window_s: float = 1.0) -> int:
    """RTP packets ``listener`` receives from ``publisher`` over a window."""

    def count() -> int:
        assert listener.options.receive_tap is not None
        ssrcs = [
            s
            for t in listener.remote_tracks.values()
            if t.participant_id == publisher
            for s in t.ssrcs
        ]
        return listener.options.receive_tap.packets_for(ssrcs)

    before = count()
    await asyncio.sleep(window_s)
    return count() - before


async def test_a_host_mute_stops_forwarding_until_the_participant_unmutes(
    node: tuple[SfuNode, ControlSpy, str],
) -> None:
    from clients.python import RtpTap

    sfu, _, url = node
    alice = await Participant.connect(url, token("alice"), options=QUIET)
    bob = await Participant.connect(
        url, token("bob"), options=ClientOptions(decode=False, receive_tap=RtpTap())
    )
    try:
        await alice.publish(audio=AudioStreamTrack())
        await bob.wait_until(lambda: len(bob.remote_tracks) == 1, what="alice's audio")
        assert await packets_from(bob, "alice") > 10
        assert await sfu.mute_participant("m1", "alice", "audio")
        await bob.wait_until(
            lambda: bob.participants["alice"].audio_muted, what="alice shown muted"
        )
        await asyncio.sleep(0.2)
        assert await packets_from(bob, "alice", 0.5) == 0
        await alice.set_muted("audio", False)
        await bob.wait_until(lambda: not bob.participants["alice"].audio_muted, what="unmuted")
        assert await packets_from(bob, "alice") > 10
    finally:
        await bob.leave()
        await alice.leave()


async def test_breakout_rooms_route_media_within_each_room(
    node: tuple[SfuNode, ControlSpy, str],
) -> None:
    from clients.python import RtpTap

    sfu, _, url = node
    names = ("ann", "ben", "cat")
    people = {
        n: await Participant.connect(
            url, token(n), options=ClientOptions(decode=False, receive_tap=RtpTap())
        )
        for n in names
    }
    try:
        for person in people.values():
            await person.publish(audio=AudioStreamTrack(), video=VideoStreamTrack())
        for person in people.values():
            await person.wait_until(lambda p=person: len(p.remote_tracks) == 4, what="all tracks")
        await sfu.assign_rooms("m1", {"ann": ("r1", "Room 1"), "ben": ("r1", "Room 1")})
        ann, ben, cat = (people[n] for n in names)
        await ann.wait_until(lambda: len(ann.remote_tracks) == 2, what="only ben's tracks")
        await cat.wait_until(lambda: len(cat.remote_tracks) == 0, what="alone in the main room")
        assert {t.participant_id for t in ann.remote_tracks.values()} == {"ben"}
        assert await packets_from(ann, "ben") > 10
        assert [p["room"] for p in sfu.roster("m1")] == ["r1", "r1", None]
        await sfu.assign_rooms("m1", {"ann": None, "ben": None})
        await cat.wait_until(lambda: len(cat.remote_tracks) == 4, what="everyone back")
        assert await packets_from(cat, "ann") > 10
    finally:
        for person in people.values():
            await person.leave()


async def test_moved_participants_are_told_their_room_and_countdown(
    node: tuple[SfuNode, ControlSpy, str],
) -> None:
    sfu, _, url = node
    async with aiohttp.ClientSession() as http:
        dan = await connect(http, url, token("dan"))
        eve = await connect(http, url, token("eve"))
        await sfu.assign_rooms("m1", {"dan": ("r2", "Room 2")}, "2026-11-29T18:00:00Z")
        changed = await dan.next("room-changed")
        assert changed == {
            "type": "room-changed",
            "room": {"id": "r2", "name": "Room 2"},
            "closes_at": "2026-11-29T18:00:00Z",
        }
        update = await eve.next("participant-updated")
        assert update["participant"]["room"] == "r2"
        assert eve.of("room-changed") == []
        await sfu.send("m1", {"type": "lobby", "waiting": []}, "hosts")
        await sfu.send("m1", {"type": "lobby", "waiting": []}, ("eve",))
        await eve.next("lobby")
        await asyncio.sleep(0.1)
        assert dan.of("lobby") == []


async def test_who_speaks_comes_from_audio_levels(
    node: tuple[SfuNode, ControlSpy, str],
) -> None:
    from clients.python.media import SyntheticAudioTrack

    sfu, _, url = node
    speaker = await Participant.connect(url, token("sam"), options=QUIET)
    silent = await Participant.connect(url, token("sil"), options=QUIET)
    async with aiohttp.ClientSession() as http:
        listener = await connect(http, url, token("lou"))
        try:
            # With video too: the video m-section negotiates no audio-level id, and
            # must not make the SFU forget the audio one.
            await speaker.publish(audio=SyntheticAudioTrack(), video=VideoStreamTrack())
            await silent.publish(audio=AudioStreamTrack())  # aiortc's silence
            started = await listener.next("speaking", timeout=10)
            assert started == {"type": "speaking", "participant_id": "sam", "speaking": True}
            await asyncio.sleep(1.5)
            spoken = {p["participant_id"]: p["speaking_s"] for p in sfu.roster("m1")}
            assert spoken["sam"] >= 1.0
            assert spoken["sil"] == 0
            assert all(f["participant_id"] == "sam" for f in listener.of("speaking"))
            await sfu.mute_participant("m1", "sam", "audio")
            await listener.next("speaking", lambda f: f["speaking"] is False)
            # The active speaker switches when someone else starts talking.
            await silent.publish(audio=SyntheticAudioTrack())
            switched = await listener.next(
                "speaking", lambda f: f["participant_id"] == "sil", timeout=10
            )
            assert switched["speaking"] is True
        finally:
            await silent.leave()
            await speaker.leave()


async def test_metrics_move_with_media_and_show_induced_loss(
    node: tuple[SfuNode, ControlSpy, str],
) -> None:
    from clients.python.rtp_tap import parse_rtp

    sfu, _, url = node

    def every_tenth_video(data: bytes) -> bool:
        packet = parse_rtp(data)
        return (
            packet.payload_type >= 96
            and packet.payload_type != 111
            and (packet.sequence_number % 10 == 0)
        )

    alice = await Participant.connect(
        url, token("alice"), options=ClientOptions(decode=False, drop_sent=every_tenth_video)
    )
    bob = await Participant.connect(
        url, token("bob"), options=ClientOptions(decode=False, drop_received=every_tenth_video)
    )
    try:
        before = sfu.node_stats()["counters"]["rtp_packets_forwarded"]
        await alice.publish(audio=AudioStreamTrack(), video=VideoStreamTrack())
        await bob.wait_until(lambda: len(bob.remote_tracks) == 2, what="alice's tracks")

        def sampled() -> dict[str, dict[str, Any]]:
            stats = sfu.meeting_stats("m1") or {"participants": []}
            return {p["participant_id"]: p for p in stats["participants"]}

        for _ in range(100):
            quality = sampled()
            alice_q, bob_q = quality.get("alice", {}), quality.get("bob", {})
            if (
                alice_q.get("loss_up", 0) > 0
                and bob_q.get("loss_down", 0) > 0
                and alice_q.get("bitrate_up_kbps", 0) > 0
                and bob_q.get("bitrate_down_kbps", 0) > 0
            ):
                break
            await asyncio.sleep(0.1)
        alice_q, bob_q = quality["alice"], quality["bob"]
        assert 0.01 < alice_q["loss_up"] < 0.5, alice_q
        assert 0.01 < bob_q["loss_down"] < 0.5, bob_q
        assert alice_q["bitrate_up_kbps"] > 10 and bob_q["bitrate_down_kbps"] > 10
        assert alice_q["connection_state"] == "connected"
        assert 0 < bob_q["video_quality"] < 5 and 1 <= bob_q["audio_quality"] <= 4.5
        node_stats = sfu.node_stats()
        assert node_stats["counters"]["rtp_packets_forwarded"] > before + 100
        assert node_stats["forwarded_packets_per_s"] > 10
        assert node_stats["quality"]["loss_down"] > 0
        assert sfu.meeting_stats("nowhere") is None
    finally:
        await bob.leave()
        await alice.leave()
