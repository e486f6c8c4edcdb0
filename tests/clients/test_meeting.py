"""A Participant's meeting state against the fake SFU: chat, rooms, permissions, lobby, mute."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from clients.python import (
    ChatReceived,
    ClientOptions,
    LobbyUpdated,
    Moderated,
    Participant,
    PermissionsChanged,
    RoomChanged,
)
from clients.python.errors import ClientError
from clients.python.media import SyntheticAudioTrack
from clients.python.messages import Permissions, RoomInfo, WaitingParticipant
from tests.clients.fake_sfu import API_KEY, ECHO, FakeSfu, running_fake_sfu

FAST = ClientOptions(timeout_s=5.0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSfu]:
    async with running_fake_sfu() as running:
        yield running


async def test_chat_to_everyone_and_a_direct_message(fake: FakeSfu) -> None:
    bob = await Participant.join(fake.base_url, "m1", "Bob", options=FAST)
    carol = await Participant.join(fake.base_url, "m1", "Carol", options=FAST)
    dave = await Participant.join(fake.base_url, "m1", "Dave", options=FAST)
    try:
        streams = {p.name: p.events() for p in (bob, carol, dave)}
        await bob.send_chat("hello all")
        for name, stream in streams.items():
            event = await stream.wait_for(
                lambda e: isinstance(e, ChatReceived), 5, f"chat at {name}"
            )
            assert isinstance(event, ChatReceived)
            message = event.message
            assert (message.sender_id, message.sender_name, message.text) == (
                bob.participant_id,
                "Bob",
                "hello all",
            )
            assert message.to is None and not message.direct
            assert isinstance(message.sent_at, datetime)

        await bob.send_chat("psst", to=carol.participant_id)
        for name in ("Bob", "Carol"):
            event = await streams[name].wait_for(lambda e: isinstance(e, ChatReceived), 5)
            assert isinstance(event, ChatReceived) and event.message.direct
            assert (event.message.text, event.message.to) == ("psst", carol.participant_id)
        await dave.send_chat("still here")
        last = await streams["Dave"].wait_for(lambda e: isinstance(e, ChatReceived), 5)
        assert isinstance(last, ChatReceived) and last.message.text == "still here"
        assert [m.text for m in dave.chat] == ["hello all", "still here"]
        assert [m.text for m in carol.chat] == ["hello all", "psst", "still here"]
        assert fake.sessions[bob.participant_id].received[-1] == {
            "type": "chat",
            "text": "psst",
            "to": carol.participant_id,
        }
    finally:
        for participant in (dave, carol, bob):
            await participant.leave()


async def test_room_permissions_and_lobby_frames_update_the_state(fake: FakeSfu) -> None:
    bob = await Participant.join(fake.base_url, "m1", "Bob", options=FAST)
    events = bob.events()
    try:
        session = await asyncio.wait_for(fake.joined.get(), 5)
        assert (bob.room, bob.permissions) == (None, Permissions())
        assert list(bob.room_mates()) == ["p-echo"]

        await session.send(
            {
                "type": "room-changed",
                "room": {"id": "r1", "name": "Room A"},
                "closes_at": "2030-01-01T10:00:00Z",
            }
        )
        changed = await events.wait_for(lambda e: isinstance(e, RoomChanged), 5)
        closes = datetime(2030, 1, 1, 10, tzinfo=UTC)
        assert changed == RoomChanged(RoomInfo("r1", "Room A"), closes)
        assert (bob.room, bob.room_closes_at) == (RoomInfo("r1", "Room A"), closes)
        assert bob.room_mates() == {}
        await session.send({"type": "participant-updated", "participant": {**ECHO, "room": "r1"}})
        await bob.wait_until(lambda: "p-echo" in bob.room_mates(), 5, "Echo in room r1")

        await session.send({"type": "room-changed", "room": None, "closes_at": None})
        await events.wait_for(lambda e: isinstance(e, RoomChanged) and e.room is None, 5)
        assert bob.room is None and bob.room_closes_at is None and bob.room_mates() == {}

        await session.send(
            {
                "type": "permissions-changed",
                "role": "host",
                "permissions": {**Permissions().to_claim(), "record": True},
            }
        )
        await events.wait_for(lambda e: isinstance(e, PermissionsChanged), 5)
        assert bob.role == "host" and bob.permissions.record

        waiting = {"participant_id": "p-g", "name": "Guest", "email": "g@x.org", "since": None}
        await session.send({"type": "lobby", "waiting": [waiting]})
        await events.wait_for(lambda e: isinstance(e, LobbyUpdated), 5)
        assert bob.lobby == (WaitingParticipant("p-g", "Guest", "g@x.org", None),)
    finally:
        await bob.leave()


async def test_a_host_mute_mutes_the_participant_here_too(fake: FakeSfu) -> None:
    host = await Participant.join(
        fake.base_url, "m1", "Hostess", options=FAST, api_key=API_KEY, role="host"
    )
    bob = await Participant.join(fake.base_url, "m1", "Bob", options=FAST)
    events = bob.events()
    try:
        assert host.role == "host" and host.control_token is not None
        await bob.publish(SyntheticAudioTrack())
        await host.api.mute(bob.participant_id, "audio")
        moderated = await events.wait_for(lambda e: isinstance(e, Moderated), 5)
        assert moderated == Moderated("mute", "audio", host.participant_id)
        assert bob.audio_muted
        assert bob.publish_pc is not None
        assert all(t.sender.track is None for t in bob.publish_pc.getTransceivers())
        session = fake.sessions[bob.participant_id]
        await bob.wait_until(
            lambda: session.received[-1] == {"type": "mute", "kind": "audio", "muted": True},
            5,
            "the mute announced",
        )
    finally:
        await bob.leave()
        await host.leave()


async def test_rest_calls_need_a_control_token(fake: FakeSfu) -> None:
    participant_id, token = fake.token("Bot")
    bot = await Participant.connect(
        fake.base_url.replace("http", "ws") + "/sfu/ws", token, options=FAST
    )
    try:
        assert bot.control_token is None
        with pytest.raises(ClientError, match="no control token"):
            bot.api  # noqa: B018
    finally:
        await bot.leave()
