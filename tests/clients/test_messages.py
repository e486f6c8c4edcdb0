"""Signaling frames as the client parses and builds them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from clients.python.messages import (
    Bye,
    ChatMessage,
    ChatReceived,
    ErrorMessage,
    IceServerInfo,
    Joined,
    LobbyUpdated,
    Moderated,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    Permissions,
    PermissionsChanged,
    PublishAnswer,
    RoomChanged,
    RoomInfo,
    SubscribeOffer,
    TrackInfo,
    UnknownMessage,
    WaitingParticipant,
    chat_frame,
    join_frame,
    leave_frame,
    mute_frame,
    parse_server_message,
    publish_offer_frame,
    subscribe_answer_frame,
)
from townhall.contract import ProtocolError, parse_client_message

ALICE = {
    "participant_id": "p-alice",
    "name": "Alice",
    "role": "host",
    "audio_muted": False,
    "video_muted": True,
}


def frame(**body: object) -> str:
    return json.dumps(body)


def test_joined() -> None:
    message = parse_server_message(
        frame(
            type="joined",
            participant_id="p-bob",
            meeting_id="m1",
            name="Bob",
            role="participant",
            ice_servers=[
                {"urls": "stun:127.0.0.1:3478"},
                {"urls": ["turn:127.0.0.1"], "username": "u", "credential": "c"},
                {"urls": ["stun:x"], "username": None, "credential": None},
            ],
            participants=[ALICE],
            extra="ignored",
        )
    )
    assert message == Joined(
        participant_id="p-bob",
        meeting_id="m1",
        name="Bob",
        role="participant",
        ice_servers=(
            IceServerInfo(("stun:127.0.0.1:3478",)),
            IceServerInfo(("turn:127.0.0.1",), "u", "c"),
            IceServerInfo(("stun:x",)),
        ),
        participants=(ParticipantInfo("p-alice", "Alice", "host", False, True),),
    )


def test_every_other_server_message() -> None:
    track = {
        "mid": "0",
        "track_id": "t1",
        "participant_id": "p-alice",
        "kind": "video",
        "source": "camera",
    }
    assert parse_server_message(frame(type="publish-answer", sdp="v=0")) == PublishAnswer("v=0")
    assert parse_server_message(frame(type="subscribe-offer", sdp="v=0", tracks=[track])) == (
        SubscribeOffer("v=0", (TrackInfo("0", "t1", "p-alice", "video", "camera"),))
    )
    alice = ParticipantInfo("p-alice", "Alice", "host", False, True)
    assert parse_server_message(frame(type="participant-joined", participant=ALICE)) == (
        ParticipantJoined(alice)
    )
    assert parse_server_message(frame(type="participant-updated", participant=ALICE)) == (
        ParticipantUpdated(alice)
    )
    assert parse_server_message(
        frame(type="participant-left", participant_id="p-alice", reason="left")
    ) == ParticipantLeft("p-alice", "left")
    assert parse_server_message(frame(type="error", code="forbidden", message="no")) == (
        ErrorMessage("forbidden", "no")
    )
    assert parse_server_message(frame(type="bye", reason="meeting ended")) == Bye("meeting ended")
    unknown = parse_server_message(frame(type="reaction", emoji="+1"))
    assert isinstance(unknown, UnknownMessage) and unknown.type == "reaction"


NOON = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def test_joined_carries_permissions_and_room() -> None:
    message = parse_server_message(
        frame(
            type="joined",
            participant_id="p-bob",
            permissions={"chat": False, "record": True, "future_flag": True},
            room={"id": "r1", "name": "Room A"},
            participants=[{**ALICE, "room": "r1"}],
        )
    )
    assert isinstance(message, Joined)
    assert message.permissions == Permissions(chat=False, record=True)
    assert message.room == RoomInfo("r1", "Room A")
    assert message.participants[0].room == "r1"
    plain = parse_server_message(frame(type="joined", participant_id="p", room=None))
    assert isinstance(plain, Joined) and plain.room is None and plain.permissions == Permissions()


def test_participants_room() -> None:
    alice = parse_server_message(frame(type="participant-updated", participant=ALICE))
    assert isinstance(alice, ParticipantUpdated) and alice.participant.room is None
    moved = parse_server_message(
        frame(type="participant-updated", participant={**ALICE, "room": "r2"})
    )
    assert isinstance(moved, ParticipantUpdated) and moved.participant.room == "r2"


def test_the_meeting_frames() -> None:
    chat = {
        "id": "c1",
        "sender_id": "p-alice",
        "sender_name": "Alice",
        "text": "hello",
        "to": None,
        "sent_at": "2025-05-01T12:00:00Z",
    }
    assert parse_server_message(frame(type="chat", message=chat)) == ChatReceived(
        ChatMessage("c1", "p-alice", "Alice", "hello", None, NOON)
    )
    direct = parse_server_message(frame(type="chat", message={**chat, "to": "p-bob"}))
    assert isinstance(direct, ChatReceived) and direct.message.direct
    waiting = {"participant_id": "p-g", "name": "Guest", "email": None, "since": chat["sent_at"]}
    assert parse_server_message(frame(type="lobby", waiting=[waiting])) == LobbyUpdated(
        (WaitingParticipant("p-g", "Guest", None, NOON),)
    )
    assert parse_server_message(frame(type="lobby", waiting=[])) == LobbyUpdated(())
    assert parse_server_message(
        frame(type="room-changed", room={"id": "r1", "name": "A"}, closes_at=None)
    ) == RoomChanged(RoomInfo("r1", "A"), None)
    assert parse_server_message(
        frame(type="room-changed", room=None, closes_at="2025-05-01T12:00:00+00:00")
    ) == RoomChanged(None, NOON)
    assert parse_server_message(
        frame(type="permissions-changed", role="host", permissions={"record": True})
    ) == PermissionsChanged("host", Permissions(record=True))
    assert parse_server_message(
        frame(type="moderation", action="mute", kind="audio", by="p-alice")
    ) == Moderated("mute", "audio", "p-alice")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "frame is not valid JSON"),
        ("[]", "frame must be an object"),
        (frame(kind="joined"), "frame needs a string 'type'"),
        (frame(type="publish-answer"), "'publish-answer' needs a string 'sdp'"),
        (frame(type="subscribe-offer", sdp="v=0", tracks={}), "'tracks' must be a list"),
        (
            frame(
                type="subscribe-offer",
                sdp="v=0",
                tracks=[{"mid": "0", "participant_id": "p", "kind": "data"}],
            ),
            "a track's 'kind' must be audio or video",
        ),
        (frame(type="participant-joined"), "'participant' must be an object"),
        (
            frame(type="participant-joined", participant={**ALICE, "audio_muted": "yes"}),
            "'audio_muted' must be a boolean",
        ),
        (
            frame(type="joined", participant_id="p", ice_servers=[{"urls": []}]),
            "an ICE server needs 'urls': a string or a list of strings",
        ),
        ("x" * (17 * 256 * 1024), "frame is larger than"),
        (frame(type="chat", text="hi"), "a chat message must be an object"),
        (
            frame(type="chat", message={"sender_id": "p", "text": 5}),
            "a chat message needs a string 'text'",
        ),
        (
            frame(type="chat", message={"sender_id": "p", "text": "x", "sent_at": "noon"}),
            "'sent_at' is not an ISO 8601 time: 'noon'",
        ),
        (frame(type="lobby", waiting={}), "'waiting' must be a list"),
        (frame(type="room-changed", room={"name": "A"}), "a room needs a string 'id'"),
        (
            frame(type="room-changed", room=None, closes_at=5),
            "'closes_at' must be a string or null",
        ),
        (
            frame(type="permissions-changed", role="host", permissions={"chat": "yes"}),
            "permission 'chat' must be a boolean",
        ),
        (frame(type="moderation", action="mute", kind="screen"), "'kind' must be audio or video"),
    ],
)
def test_malformed_server_frames(text: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_server_message(text)


def test_client_frames_are_what_the_contract_accepts() -> None:
    frames = [
        join_frame("a.b.c"),
        publish_offer_frame("v=0", {"0": "microphone", "1": "camera"}),
        subscribe_answer_frame("v=0"),
        mute_frame("audio", True),
        chat_frame("hello"),
        chat_frame("psst", to="p-bob"),
        leave_frame(),
    ]
    for built in frames:
        assert parse_client_message(json.dumps(built)) == built


def test_publish_offer_refuses_an_unknown_source() -> None:
    with pytest.raises(ValueError, match="source of mid '0' must be one of"):
        publish_offer_frame("v=0", {"0": "webcam"})


@pytest.mark.parametrize(
    ("text", "to", "message"),
    [
        ("", None, "needs some text"),
        ("x" * 2001, None, "at most 2000 characters"),
        ("hi", "", "'to' must be a participant id"),
    ],
)
def test_chat_frames_are_checked(text: str, to: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chat_frame(text, to)


def test_recording_caption_and_speaking_frames_are_typed() -> None:
    from clients.python.messages import (
        CaptionReceived,
        RecordingChanged,
        SpeakingChanged,
        record_frame,
    )

    started = parse_server_message(
        '{"type": "recording", "state": "started", "recording_id": "r1"}'
    )
    assert started == RecordingChanged(state="started", recording_id="r1", reason="")
    caption = parse_server_message(
        '{"type": "caption", "participant_id": "p1", "name": "Ada", "text": "hello",'
        ' "start": 1.5, "end": 2, "final": true}'
    )
    assert caption == CaptionReceived("p1", "Ada", "hello", 1.5, 2.0, True)
    speaking = parse_server_message(
        '{"type": "speaking", "participant_id": "p2", "speaking": true}'
    )
    assert speaking == SpeakingChanged("p2", True)
    joined = parse_server_message(
        '{"type": "joined", "participant_id": "p", "recording": {"recording_id": "r9"}}'
    )
    assert joined.recording_id == "r9"  # type: ignore[union-attr]
    assert record_frame("stop") == {"type": "record", "action": "stop"}
    with pytest.raises(ProtocolError):
        parse_server_message('{"type": "recording", "state": "paused", "recording_id": "r1"}')
    with pytest.raises(ValueError):
        record_frame("pause")
