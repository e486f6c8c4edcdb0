"""A Participant against the fake SFU: join, publish, subscribe, renegotiate, mute, leave."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from clients.python import (
    ClientOptions,
    ClientTimeout,
    Participant,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    RtpTap,
    ServerError,
    SessionClosed,
    SessionEnded,
    TrackAdded,
    TrackRemoved,
)
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack
from clients.python.session import codec_preferences
from tests.clients.fake_sfu import ECHO, FakeSfu, running_fake_sfu

FAST = ClientOptions(timeout_s=5.0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSfu]:
    async with running_fake_sfu() as running:
        yield running


async def test_join_publish_receive_renegotiate_and_leave(fake: FakeSfu) -> None:
    receive_tap = RtpTap()
    bob = await Participant.join(
        fake.base_url, "m1", "Bob", options=ClientOptions(receive_tap=receive_tap, timeout_s=5)
    )
    events = bob.events()
    session = await asyncio.wait_for(fake.joined.get(), 5)
    assert (bob.name, bob.meeting_id, bob.role) == ("Bob", "m1", "participant")
    assert list(bob.participants) == ["p-echo"]  # our own entry is left out

    await bob.publish(SyntheticAudioTrack(), SyntheticVideoTrack(160, 128))
    assert session.sources == {"0": "microphone", "1": "camera"}
    await bob.wait_until(
        lambda: session.published_frames.get("video", 0) > 5, 10, "video at the SFU"
    )

    await session.add_echo_tracks()
    added = [await events.wait_for(lambda e: isinstance(e, TrackAdded), 5) for _ in range(2)]
    tracks = {e.track.kind: e.track for e in added if isinstance(e, TrackAdded)}
    assert {(t.participant_id, t.source) for t in tracks.values()} == {
        ("p-echo", "camera"),
        ("p-echo", "microphone"),
    }
    assert all(t.ssrcs for t in tracks.values())
    await bob.wait_until(lambda: tracks["video"].frames > 5, 10, "decoded video")
    await bob.wait_until(lambda: tracks["audio"].frames > 5, 10, "decoded audio")
    assert receive_tap.packets_for(tracks["video"].ssrcs) > 0

    await session.send(
        {"type": "participant-updated", "participant": {**ECHO, "audio_muted": True}}
    )
    updated = await events.wait_for(lambda e: isinstance(e, ParticipantUpdated), 5)
    assert isinstance(updated, ParticipantUpdated) and updated.participant.audio_muted
    assert bob.participants["p-echo"].audio_muted

    await session.remove_echo_tracks()
    removed = [await events.wait_for(lambda e: isinstance(e, TrackRemoved), 5) for _ in range(2)]
    assert {e.track.kind for e in removed if isinstance(e, TrackRemoved)} == {"audio", "video"}
    assert bob.remote_tracks == {}
    assert bob.subscribe_offers == 2

    await session.send({"type": "participant-left", "participant_id": "p-echo", "reason": "left"})
    await events.wait_for(lambda e: isinstance(e, ParticipantLeft), 5)
    assert bob.participants == {}

    await bob.set_muted("video", True)
    video_sender = next(t.sender for t in bob.publish_pc.getTransceivers() if t.kind == "video")  # type: ignore[union-attr]
    assert video_sender.track is None
    await bob.set_muted("video", False)
    assert video_sender.track is not None

    await bob.leave()
    assert bob.closed and bob.end_reason == "left"
    kinds = [f["type"] for f in session.received]
    assert kinds[:2] == ["publish-offer", "subscribe-answer"]
    assert kinds[-3:] == ["mute", "mute", "leave"]
    assert session.received[-3] == {"type": "mute", "kind": "video", "muted": True}
    assert isinstance(await events.wait_for(lambda e: isinstance(e, SessionEnded), 5), SessionEnded)
    await bob.leave()  # twice is harmless


async def test_counting_only_mode_stops_decoders(fake: FakeSfu) -> None:
    receive_tap = RtpTap()
    bob = await Participant.join(
        fake.base_url, "m1", "Bob", options=ClientOptions(receive_tap=receive_tap, decode=False)
    )
    try:
        session = await asyncio.wait_for(fake.joined.get(), 5)
        await session.add_echo_tracks()
        await bob.wait_until(lambda: len(bob.remote_tracks) == 2, 5, "two tracks")
        await bob.wait_until(lambda: receive_tap.packets > 100, 10, "packets")
        assert all(t.frames == 0 for t in bob.remote_tracks.values())
    finally:
        await bob.leave()


async def test_events_from_the_sfu_reach_listeners_and_streams(fake: FakeSfu) -> None:
    bob = await Participant.join(fake.base_url, "m1", "Bob", options=FAST)
    seen: list[object] = []
    bob.add_listener(seen.append)
    events = bob.events()
    try:
        session = await asyncio.wait_for(fake.joined.get(), 5)
        carol = {**ECHO, "participant_id": "p-carol", "name": "Carol"}
        await session.socket.send_str("{not json")  # dropped and counted, not fatal
        await session.send({"type": "participant-joined", "participant": carol})
        event = await events.next(5)
        assert isinstance(event, ParticipantJoined) and event.participant.name == "Carol"
        assert seen == [event]
        assert "p-carol" in bob.participants
        assert bob._channel is not None and bob._channel.malformed_frames == 1
    finally:
        await bob.leave()


async def test_bye_ends_the_session(fake: FakeSfu) -> None:
    bob = await Participant.join(fake.base_url, "m1", "Bob", options=FAST)
    events = bob.events()
    session = await asyncio.wait_for(fake.joined.get(), 5)
    await session.send({"type": "bye", "reason": "meeting ended"})
    ended = await events.wait_for(lambda e: isinstance(e, SessionEnded), 5)
    assert ended == SessionEnded("bye: meeting ended")
    assert bob.closed
    with pytest.raises(SessionClosed, match="bye: meeting ended"):
        await bob.publish(SyntheticAudioTrack())
    await bob.leave()


async def test_a_refused_token_is_a_server_error(fake: FakeSfu) -> None:
    with pytest.raises(ServerError) as refused:
        await Participant.connect(
            fake.base_url.replace("http", "ws") + "/sfu/ws", "not-a-jwt", options=FAST
        )
    assert refused.value.code == "unauthorized"


async def test_an_unanswered_publish_offer_times_out(fake: FakeSfu) -> None:
    bob = await Participant.join(fake.base_url, "m1", "Bob", options=ClientOptions(timeout_s=1))
    try:
        session = await asyncio.wait_for(fake.joined.get(), 5)
        session.answer_publish = False
        with pytest.raises(ClientTimeout, match="no publish-answer within 1 s"):
            await bob.publish(SyntheticAudioTrack())
    finally:
        await bob.leave()


async def test_an_error_instead_of_a_publish_answer_is_raised(fake: FakeSfu) -> None:
    bob = await Participant.join(fake.base_url, "m1", "Bob", options=FAST)
    try:
        session = await asyncio.wait_for(fake.joined.get(), 5)
        session.answer_publish = False
        publishing = asyncio.create_task(bob.publish(SyntheticAudioTrack()))
        await bob.wait_until(lambda: bool(session.received), 5, "the publish offer")
        await session.send({"type": "error", "code": "forbidden", "message": "may not publish"})
        with pytest.raises(ServerError, match="forbidden: may not publish"):
            await publishing
        assert not bob.closed
    finally:
        await bob.leave()


async def test_a_lost_socket_ends_the_session_when_not_reconnecting(fake: FakeSfu) -> None:
    bob = await Participant.join(
        fake.base_url, "m1", "Bob", options=ClientOptions(timeout_s=5.0, reconnect=False)
    )
    session = await asyncio.wait_for(fake.joined.get(), 5)
    await session.socket.close()
    await bob.wait_until(lambda: bob.closed, 5, "the session to end")
    assert bob.end_reason == "connection-lost"
    await bob.leave()


async def test_publish_needs_a_track_of_the_right_kind(fake: FakeSfu) -> None:
    bob = await Participant.join(fake.base_url, "m1", "Bob", options=FAST)
    try:
        with pytest.raises(ValueError, match="needs an audio or a video track"):
            await bob.publish()
        with pytest.raises(ValueError, match="the audio argument is a video track"):
            await bob.publish(audio=SyntheticVideoTrack())
    finally:
        await bob.leave()


def test_codec_preferences_narrow_to_one_codec_and_rtx() -> None:
    assert {c.name for c in codec_preferences("video", "vp8")} == {"VP8", "rtx"}
    assert codec_preferences("audio", None) == []
    with pytest.raises(ValueError, match="aiortc cannot send video codec 'AV1'"):
        codec_preferences("video", "AV1")


async def test_an_unknown_codec_is_refused_before_anything_is_sent(fake: FakeSfu) -> None:
    options = ClientOptions(timeout_s=5, video_codec="AV1")
    bob = await Participant.join(fake.base_url, "m1", "Bob", options=options)
    try:
        session = await asyncio.wait_for(fake.joined.get(), 5)
        with pytest.raises(ValueError, match="cannot send video codec"):
            await bob.publish(SyntheticAudioTrack(), SyntheticVideoTrack(64, 64))
        assert bob.publish_pc is None and session.received == []
    finally:
        await bob.leave()
