"""The ``relay`` target: 1 publisher and 2 subscribers through the MediaRelay reference SFU.

One subscriber joins before the publisher (it learns of it by long-polling),
one after. Both must receive audio and video at about the rate the publisher
sends. `measure_room` is shared with the Janus target's test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.contrib.media import MediaBlackhole

from benchmarks.clip import (
    ClipSettings,
    EncodedAudioTrack,
    EncodedClip,
    EncodedVideoTrack,
    encode_clip,
)
from benchmarks.targets import RoomClient, TargetServer, client_for
from benchmarks.targets.relay import RelayServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO_ROOT = Path(__file__).resolve().parents[2]

WINDOW_S = 3.0
READY_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def small_clip() -> EncodedClip:
    """A small clip (320x180, 300 kbps), so that the relay's re-encoding stays cheap."""
    return encode_clip(ClipSettings(seconds=2.0, width=320, height=180, video_bitrate=300_000))


@dataclass
class Received:
    """One subscriber's receivers, by kind."""

    name: str
    receivers: list[tuple[RTCRtpReceiver, str, str]] = field(default_factory=list)
    # aiortc decodes what it receives; the frames are read and dropped.
    sink: MediaBlackhole = field(default_factory=MediaBlackhole)

    def on_receiver(self, receiver: RTCRtpReceiver, kind: str, publisher: str) -> None:
        self.receivers.append((receiver, kind, publisher))
        self.sink.addTrack(receiver.track)

    async def packets(self) -> dict[str, int]:
        counts = {"audio": 0, "video": 0}
        for receiver, kind, _publisher in self.receivers:
            for stats in (await receiver.getStats()).values():
                if stats.type == "inbound-rtp":
                    counts[kind] += stats.packetsReceived
        return counts


async def sent_packets(pc: RTCPeerConnection) -> dict[str, int]:
    counts = {"audio": 0, "video": 0}
    for sender in pc.getSenders():
        assert sender.track is not None
        for stats in (await sender.getStats()).values():
            if stats.type == "outbound-rtp":
                counts[sender.track.kind] += stats.packetsSent
    return counts


@dataclass
class RoomRates:
    """Packets per second over one window: sent by the publisher, received per subscriber."""

    sent: dict[str, float]
    received: dict[str, dict[str, float]]  # subscriber -> kind -> packets/s
    video_frames_per_s: float
    publishers_seen: set[str]
    clients: list[RoomClient]  # early subscriber, publisher, late subscriber (they have left)


async def _until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:g} s")
        await asyncio.sleep(0.2)


async def measure_room(
    server: TargetServer,
    work_dir: Path,
    clip: EncodedClip,
    during: Callable[[], None] = lambda: None,
) -> RoomRates:
    """Start ``server``, run 1 publisher + 2 subscribers, measure a window, stop everything.

    ``during`` runs inside the window, while everyone is in the room.
    """
    clients: list[RoomClient] = []
    await server.start(work_dir)
    try:
        room = await server.create_room("smoke")
        early, late = Received("early"), Received("late")
        subscriber = client_for(server.info)
        clients.append(subscriber)
        await subscriber.join(room, early.name, [], True, early.on_receiver)
        publisher = client_for(server.info)
        clients.append(publisher)
        video = EncodedVideoTrack(clip)
        await publisher.join(room, "publisher", [video, EncodedAudioTrack(clip)], False,
                             lambda *_: None)
        subscriber = client_for(server.info)
        clients.append(subscriber)
        await subscriber.join(room, late.name, [], True, late.on_receiver)
        subscribers = (early, late)

        async def everyone_receives() -> bool:
            for received in subscribers:
                counts = await received.packets()
                if min(counts.values()) == 0:
                    return False
            return True

        await _until(everyone_receives, READY_TIMEOUT_S, "audio and video at both subscribers")
        publish_pc: RTCPeerConnection = publisher.publish_pc  # type: ignore[attr-defined]
        sent_before, frames_before = await sent_packets(publish_pc), video.frames_sent
        received_before = {r.name: await r.packets() for r in subscribers}
        started = time.monotonic()
        await asyncio.sleep(WINDOW_S)
        during()
        elapsed = time.monotonic() - started
        sent_after, frames_after = await sent_packets(publish_pc), video.frames_sent
        received_after = {r.name: await r.packets() for r in subscribers}
        return RoomRates(
            sent={k: (sent_after[k] - sent_before[k]) / elapsed for k in sent_after},
            received={
                name: {k: (after[k] - received_before[name][k]) / elapsed for k in after}
                for name, after in received_after.items()
            },
            video_frames_per_s=(frames_after - frames_before) / elapsed,
            publishers_seen={p for r in subscribers for _, _, p in r.receivers},
            clients=clients,
        )
    finally:
        await asyncio.gather(*(c.leave() for c in clients), return_exceptions=True)
        await server.stop()


async def streams_of_two_publishers(
    server: TargetServer, work_dir: Path, clip: EncodedClip
) -> dict[tuple[str, str], int]:
    """Two publishers, then a subscriber that gets both in one offer: packets per stream.

    A regression test: with aiortc's default bundle policy, the second audio
    track of such an offer stayed on a transport that BUNDLE then dropped.
    """
    clients: list[RoomClient] = []
    await server.start(work_dir)
    try:
        room = await server.create_room("two publishers")
        for name in ("alice", "bob"):
            publisher = client_for(server.info)
            clients.append(publisher)
            await publisher.join(room, name, [EncodedVideoTrack(clip), EncodedAudioTrack(clip)],
                                 False, lambda *_: None)
        received = Received("carol")
        subscriber = client_for(server.info)
        clients.append(subscriber)
        await subscriber.join(room, received.name, [], True, received.on_receiver)

        async def four_streams_flow() -> bool:
            counts = await stream_packets(received)
            return len(counts) == 4 and min(counts.values()) > 0

        with contextlib.suppress(AssertionError):
            await _until(four_streams_flow, READY_TIMEOUT_S, "4 streams")
        return await stream_packets(received)
    finally:
        await asyncio.gather(*(c.leave() for c in clients), return_exceptions=True)
        await server.stop()


async def publisher_leaves_and_comes_back(
    server: TargetServer, work_dir: Path, clip: EncodedClip
) -> None:
    """A subscriber lets go of a publisher who left, and receives the one who comes next."""
    clients: list[RoomClient] = []
    await server.start(work_dir)
    try:
        room = await server.create_room("churn")
        received = Received("subscriber")
        subscriber = client_for(server.info)
        clients.append(subscriber)
        await subscriber.join(room, received.name, [], True, received.on_receiver)
        subscriptions: dict[Any, Any] = subscriber.subscriptions  # type: ignore[attr-defined]
        for generation in range(2):
            publisher = client_for(server.info)
            clients.append(publisher)
            name = f"publisher-{generation}"
            await publisher.join(room, name, [EncodedVideoTrack(clip), EncodedAudioTrack(clip)],
                                 False, lambda *_: None)

            async def flowing(name: str = name) -> bool:
                counts = await stream_packets(received)
                return counts.get((name, "audio"), 0) > 0 and counts.get((name, "video"), 0) > 0

            await _until(flowing, READY_TIMEOUT_S, f"media from {name}")
            assert len(subscriptions) == 1
            assert subscriber.connected is True  # type: ignore[attr-defined]
            await publisher.leave()

            async def let_go() -> bool:
                return not subscriptions

            await _until(let_go, READY_TIMEOUT_S, f"letting go of {name}")
            assert subscriber.connected is None  # type: ignore[attr-defined]
    finally:
        await asyncio.gather(*(c.leave() for c in clients), return_exceptions=True)
        await server.stop()


async def stream_packets(received: Received) -> dict[tuple[str, str], int]:
    """Packets so far per (publisher, kind)."""
    counts: dict[tuple[str, str], int] = {}
    for receiver, kind, publisher in received.receivers:
        for stats in (await receiver.getStats()).values():
            if stats.type == "inbound-rtp":
                counts[publisher, kind] = counts.get((publisher, kind), 0) + stats.packetsReceived
        counts.setdefault((publisher, kind), 0)
    return counts


def sfu_outlives_a_killed_benchmark(kind: str, work_dir: Path) -> bool:
    """Start a ``kind`` server from a process that dies at once: is the SFU alive 10 s on?"""
    script = (
        "import asyncio, os, sys\n"
        "from pathlib import Path\n"
        "from benchmarks.targets import server_for\n"
        "async def main():\n"
        f"    server = server_for({kind!r})\n"
        f"    await server.start(Path({str(work_dir)!r}))\n"
        "    print(server.pids()[0], flush=True)\n"
        "    os._exit(0)  # no stop(): as if killed\n"
        "asyncio.run(main())\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=60, check=True)
    pid = int(completed.stdout.split()[-1])
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)  # ours: the test started it
    return True


def assert_near(measured: float, expected: float, tolerance: float, what: str) -> None:
    assert abs(measured - expected) <= tolerance * expected, (
        f"{what}: {measured:.1f}/s, expected {expected:.1f}/s ± {tolerance:.0%}"
    )


async def test_two_subscribers_receive_the_relayed_tracks(
    tmp_path: Path, small_clip: EncodedClip
) -> None:
    server = RelayServer()
    rates = await measure_room(server, tmp_path, small_clip)
    print(f"relay: {rates}")

    assert rates.publishers_seen == {"publisher"}
    assert_near(rates.sent["audio"], 50.0, 0.15, "audio sent")  # one Opus packet per 20 ms
    assert_near(rates.video_frames_per_s, small_clip.fps, 0.15, "video frames sent")
    for name, received in rates.received.items():
        assert_near(received["audio"], rates.sent["audio"], 0.15, f"{name} audio")
        # Re-encoded per subscriber: as many packets as the relay's own encoder
        # makes, at least about one per frame, and not a flood.
        assert rates.video_frames_per_s * 0.7 <= received["video"], (name, rates)
        assert received["video"] <= rates.sent["video"] * 5, (name, rates)
    assert server.pids() == []


async def test_one_subscription_carries_two_publishers(
    tmp_path: Path, small_clip: EncodedClip
) -> None:
    counts = await streams_of_two_publishers(RelayServer(), tmp_path, small_clip)
    assert set(counts) == {(p, k) for p in ("alice", "bob") for k in ("audio", "video")}
    assert min(counts.values()) > 0, counts


async def test_a_subscriber_follows_publishers_who_leave_and_come(
    tmp_path: Path, small_clip: EncodedClip
) -> None:
    await publisher_leaves_and_comes_back(RelayServer(), tmp_path, small_clip)


def test_the_relay_sfu_ends_with_the_benchmark(tmp_path: Path) -> None:
    assert not sfu_outlives_a_killed_benchmark("relay", tmp_path)


async def test_the_relay_sfu_refuses_bad_requests(tmp_path: Path) -> None:
    server = RelayServer()
    await server.start(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            base = server.info.base_url
            async with http.post(base + "/rooms/nope/publishers", json={"sdp": "x"}) as answer:
                assert answer.status == 404
                assert (await answer.json())["error"]["code"] == "room_not_found"
            room = await server.create_room("bad")
            async with http.post(f"{base}/rooms/{room}/publishers", data=b"{not json") as answer:
                assert answer.status == 400
                assert (await answer.json())["error"]["code"] == "bad_json"
            async with http.post(f"{base}/rooms/{room}/publishers", json={"sdp": 5}) as answer:
                assert answer.status == 400
                assert (await answer.json())["error"]["code"] == "bad_field"
            async with http.post(f"{base}/rooms/{room}/subscribers", json={}) as answer:
                assert answer.status == 409
                assert (await answer.json())["error"]["code"] == "nothing_to_subscribe"
            async with http.get(f"{base}/rooms/{room}/publishers?since=x") as answer:
                assert answer.status == 400
    finally:
        await server.stop()
    assert server.pids() == []


@pytest.mark.parametrize(
    ("options", "message"),
    [({"loops": "2"}, "unknown relay options"), ({"timeout_s": "soon"}, "timeout_s must be")],
)
def test_bad_options_are_refused(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RelayServer(options)
