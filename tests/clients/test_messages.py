"""Signaling frames as the client parses and builds them."""

from __future__ import annotations

import json

import pytest

from clients.python.messages import (
    Bye,
    ErrorMessage,
    IceServerInfo,
    Joined,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    PublishAnswer,
    SubscribeOffer,
    TrackInfo,
    UnknownMessage,
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
    unknown = parse_server_message(frame(type="chat", text="hi"))
    assert isinstance(unknown, UnknownMessage) and unknown.type == "chat"


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
        leave_frame(),
    ]
    for built in frames:
        assert parse_client_message(json.dumps(built)) == built


def test_publish_offer_refuses_an_unknown_source() -> None:
    with pytest.raises(ValueError, match="source of mid '0' must be one of"):
        publish_offer_frame("v=0", {"0": "webcam"})
