"""A Participant rejoins by itself against the fake SFU: after ``reconnect``, after a dropped
socket, never after ``bye``, and gives up when refused or after its deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from clients.python import ClientOptions, Participant, SessionEnded
from clients.python.events import Reconnected, Reconnecting, TrackAdded
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack
from clients.python.reconnect import Backoff, reconnect_url
from tests.clients.fake_sfu import FakeSession, FakeSfu, running_fake_sfu

OPTIONS = ClientOptions(timeout_s=5.0, reconnect_within_s=10.0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSfu]:
    async with running_fake_sfu() as running:
        yield running


async def joined_and_publishing(
    fake: FakeSfu, options: ClientOptions = OPTIONS
) -> tuple[Participant, FakeSession]:
    bob = await Participant.join(fake.base_url, "m1", "Bob", options=options)
    session = await asyncio.wait_for(fake.joined.get(), 5)
    await bob.publish(SyntheticAudioTrack(), SyntheticVideoTrack(160, 128))
    return bob, session


async def test_a_reconnect_frame_rejoins_and_republishes_the_same_tracks(fake: FakeSfu) -> None:
    bob, first = await joined_and_publishing(fake)
    events = bob.events()
    publish_pc = bob.publish_pc
    try:
        await bob.set_muted("video", True)
        await first.send({"type": "reconnect", "reason": "node draining"})
        await first.socket.close()

        lost = await events.wait_for(lambda e: isinstance(e, Reconnecting), 5)
        assert isinstance(lost, Reconnecting) and lost.reason == "reconnect: node draining"
        second = await asyncio.wait_for(fake.joined.get(), 10)
        back = await events.wait_for(lambda e: isinstance(e, Reconnected), 10)
        assert isinstance(back, Reconnected)
        print(f"rejoined after a reconnect frame in {back.duration_s:.2f} s")
        assert back.attempts == 1 and back.duration_s < 10
        assert fake.rejoins == [bob.participant_id]
        # The same participant, on a new publish connection, with the same sources.
        assert second.claims.participant_id == bob.participant_id
        assert bob.publish_pc is not None and bob.publish_pc is not publish_pc
        assert second.sources == {"0": "microphone", "1": "camera"}
        assert {"type": "mute", "kind": "video", "muted": True} in second.received
        await bob.wait_until(
            lambda: second.published_frames.get("audio", 0) > 5, 10, "audio after rejoining"
        )
        assert second.published_frames.get("video", 0) == 0  # still muted
        assert not bob.closed and bob.reconnects == 1 and bob.last_reconnect_s is not None

        # Remote tracks come back on the new subscribe connection.
        await second.add_echo_tracks()
        added = await events.wait_for(lambda e: isinstance(e, TrackAdded), 5)
        assert isinstance(added, TrackAdded) and added.track.participant_id == "p-echo"
    finally:
        await bob.leave()
    assert bob.end_reason == "left"


async def test_a_dropped_socket_rejoins(fake: FakeSfu) -> None:
    bob, first = await joined_and_publishing(fake)
    events = bob.events()
    try:
        await first.socket.close()
        second = await asyncio.wait_for(fake.joined.get(), 10)
        back = await events.wait_for(lambda e: isinstance(e, Reconnected), 10)
        assert isinstance(back, Reconnected)
        await bob.wait_until(
            lambda: second.published_frames.get("video", 0) > 5, 10, "video after rejoining"
        )
    finally:
        await bob.leave()


async def test_a_failed_media_connection_rejoins(fake: FakeSfu) -> None:
    bob, first = await joined_and_publishing(fake)
    events = bob.events()
    try:
        # Inject the failure (aiortc's own ICE consent check takes 30 s to give up).
        pc = bob.publish_pc
        assert pc is not None
        pc._RTCPeerConnection__connectionState = "failed"  # type: ignore[attr-defined]
        pc.emit("connectionstatechange")
        lost = await events.wait_for(lambda e: isinstance(e, Reconnecting), 5)
        assert isinstance(lost, Reconnecting) and lost.reason == "media-failed"
        second = await asyncio.wait_for(fake.joined.get(), 10)
        await events.wait_for(lambda e: isinstance(e, Reconnected), 10)
        await bob.wait_until(
            lambda: second.published_frames.get("video", 0) > 5, 10, "video after rejoining"
        )
        assert first.socket.closed
    finally:
        await bob.leave()


async def test_connect_without_a_control_plane_rejoins_with_its_url_and_token(
    fake: FakeSfu,
) -> None:
    _pid, token = fake.token("Carol")
    carol = await Participant.connect(f"{fake.base_url.replace('http', 'ws')}/sfu/ws", token)
    try:
        first = await asyncio.wait_for(fake.joined.get(), 5)
        events = carol.events()
        await first.socket.close()
        await events.wait_for(lambda e: isinstance(e, Reconnected), 10)
        second = await asyncio.wait_for(fake.joined.get(), 5)
        assert second.claims.participant_id == first.claims.participant_id
        assert fake.rejoins == []  # no control plane to ask
    finally:
        await carol.leave()


async def test_bye_never_reconnects(fake: FakeSfu) -> None:
    bob, session = await joined_and_publishing(fake)
    events = bob.events()
    await session.send({"type": "bye", "reason": "removed by a host"})
    await session.socket.close()
    ended = await events.wait_for(lambda e: isinstance(e, SessionEnded), 5)
    assert isinstance(ended, SessionEnded) and ended.reason == "bye: removed by a host"
    assert not any(isinstance(e, Reconnecting) for e in events.pending())
    assert fake.rejoins == []
    await bob.leave()


async def test_a_refused_rejoin_ends_the_session_at_once(fake: FakeSfu) -> None:
    bob, session = await joined_and_publishing(fake)
    fake.refuse_rejoin = (409, "meeting_ended")
    await session.socket.close()
    await bob.wait_until(lambda: bob.closed, 5, "the session to end")
    assert bob.end_reason is not None
    assert bob.end_reason.startswith("reconnect-failed: reconnect refused with HTTP 409")
    assert fake.rejoins == [bob.participant_id]
    await bob.leave()


async def test_it_gives_up_after_its_deadline(fake: FakeSfu) -> None:
    options = ClientOptions(timeout_s=5.0, reconnect_within_s=1.5)
    bob, session = await joined_and_publishing(fake, options)
    fake.refuse_rejoin = (503, "no_node_available")
    started = time.monotonic()
    await session.socket.close()
    await bob.wait_until(lambda: bob.closed, 6, "giving up")
    took = time.monotonic() - started
    assert bob.end_reason is not None
    assert bob.end_reason.startswith("reconnect-failed: not back within 1.5 s"), bob.end_reason
    # 0.25 + 0.5 + 1 s of backoff fit in 1.5 s: three or four tries, not a busy loop.
    assert 3 <= len(fake.rejoins) <= 5, fake.rejoins
    assert 1.4 <= took < 4, took
    await bob.leave()


async def test_leave_while_reconnecting_stops_trying(fake: FakeSfu) -> None:
    bob, session = await joined_and_publishing(fake)
    fake.refuse_rejoin = (503, "no_node_available")
    await session.socket.close()
    await bob.wait_until(lambda: len(fake.rejoins) >= 2, 5, "a retry")
    started = time.monotonic()
    await bob.leave()
    assert bob.end_reason == "left"
    assert time.monotonic() - started < 2
    tries = len(fake.rejoins)
    await asyncio.sleep(1.5)
    assert len(fake.rejoins) == tries


def test_backoff_doubles_up_to_its_cap() -> None:
    delays = Backoff(0.25, 2.0).delays()
    assert [next(delays) for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    with pytest.raises(ValueError, match="0 < first <= cap"):
        Backoff(0, 1)


def test_reconnect_url_quotes_its_ids() -> None:
    assert (
        reconnect_url("http://h:1/", "m 1", "p/2")
        == "http://h:1/api/v1/meetings/m%201/participants/p%2F2/reconnect"
    )
