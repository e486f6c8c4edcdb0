"""The signaling frames as the client sees them (protocol in `townhall.contract`).

Frames from the SFU are parsed once, here, into small frozen dataclasses;
fields the client does not know are ignored so that the SFU can add some.
Frames to the SFU are built by the ``*_frame`` functions of `frames`
(re-exported here).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

from townhall.contract import MAX_SIGNAL_FRAME_BYTES, Permissions, ProtocolError

# The frames to the SFU live in `frames`; they are still importable from here.
from .frames import (
    chat_frame,
    join_frame,
    leave_frame,
    mute_frame,
    publish_offer_frame,
    record_frame,
    subscribe_answer_frame,
)

__all__ = [
    "Bye",
    "ChatMessage",
    "CaptionReceived",
    "ChatReceived",
    "ErrorMessage",
    "IceServerInfo",
    "Joined",
    "LobbyUpdated",
    "Moderated",
    "ParticipantInfo",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantUpdated",
    "Permissions",
    "PermissionsChanged",
    "PublishAnswer",
    "Reconnect",
    "RecordingChanged",
    "RoomChanged",
    "RoomInfo",
    "ServerMessage",
    "SpeakingChanged",
    "SubscribeOffer",
    "TrackInfo",
    "UnknownMessage",
    "WaitingParticipant",
    "chat_frame",
    "join_frame",
    "leave_frame",
    "mute_frame",
    "parse_chat_message",
    "parse_ice_servers",
    "parse_permissions",
    "parse_server_message",
    "parse_waiting_participant",
    "publish_offer_frame",
    "record_frame",
    "subscribe_answer_frame",
]

Kind = Literal["audio", "video"]
# What the client accepts from the SFU in one frame: larger than the client's
# own limit, since a subscribe offer grows with the number of tracks.
MAX_SERVER_FRAME_BYTES = 16 * MAX_SIGNAL_FRAME_BYTES


@dataclass(frozen=True)
class IceServerInfo:
    """A STUN/TURN server the client should use."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class ParticipantInfo:
    """Someone in the meeting, as the SFU describes them."""

    participant_id: str
    name: str
    role: str
    audio_muted: bool = False
    video_muted: bool = False
    # The breakout room this participant is in; None: the main meeting.
    room: str | None = None


@dataclass(frozen=True)
class RoomInfo:
    """A breakout room."""

    id: str
    name: str


@dataclass(frozen=True)
class ChatMessage:
    """One chat message, as the control plane stored it."""

    id: str
    sender_id: str
    sender_name: str
    text: str
    # None: to everyone in the meeting; else the one participant it was sent to.
    to: str | None
    sent_at: datetime | None

    @property
    def direct(self) -> bool:
        """Whether this is a direct message to one participant."""
        return self.to is not None


@dataclass(frozen=True)
class WaitingParticipant:
    """Someone waiting in the lobby to be admitted."""

    participant_id: str
    name: str
    email: str | None
    since: datetime | None


@dataclass(frozen=True)
class TrackInfo:
    """One m-section of the subscribe connection: whose track it carries."""

    mid: str
    track_id: str
    participant_id: str
    kind: Kind
    source: str


@dataclass(frozen=True)
class Joined:
    """``joined``: the SFU accepted the token."""

    participant_id: str
    meeting_id: str
    name: str
    role: str
    ice_servers: tuple[IceServerInfo, ...]
    participants: tuple[ParticipantInfo, ...]
    permissions: Permissions = field(default_factory=Permissions)
    room: RoomInfo | None = None
    # The recording running when this participant joined (people must know).
    recording_id: str | None = None


@dataclass(frozen=True)
class PublishAnswer:
    """``publish-answer``: the SFU's answer to the client's publish offer."""

    sdp: str


@dataclass(frozen=True)
class SubscribeOffer:
    """``subscribe-offer``: the SFU's offer for the subscribe connection."""

    sdp: str
    tracks: tuple[TrackInfo, ...]


@dataclass(frozen=True)
class ParticipantJoined:
    """``participant-joined``."""

    participant: ParticipantInfo


@dataclass(frozen=True)
class ParticipantUpdated:
    """``participant-updated`` (mute state, role, name)."""

    participant: ParticipantInfo


@dataclass(frozen=True)
class ParticipantLeft:
    """``participant-left``."""

    participant_id: str
    reason: str


@dataclass(frozen=True)
class ChatReceived:
    """``chat``: a message to everyone, or a direct one to or from this participant."""

    message: ChatMessage


@dataclass(frozen=True)
class LobbyUpdated:
    """``lobby``: who is waiting to be admitted now (hosts only); empty when nobody."""

    waiting: tuple[WaitingParticipant, ...]


@dataclass(frozen=True)
class RoomChanged:
    """``room-changed``: this participant was moved to a breakout room, or back (None)."""

    room: RoomInfo | None
    # When the host closed the rooms with a countdown: when they close.
    closes_at: datetime | None = None


@dataclass(frozen=True)
class PermissionsChanged:
    """``permissions-changed``: what this participant may do changed (promoted, policy)."""

    role: str
    permissions: Permissions


@dataclass(frozen=True)
class Moderated:
    """``moderation``: a host acted on this participant (``mute``: its audio or video)."""

    action: str
    kind: Kind | None
    by: str


@dataclass(frozen=True)
class RecordingChanged:
    """``recording``: the meeting started or stopped being recorded, or a recording failed."""

    state: str  # "started" | "stopped" | "failed"
    recording_id: str
    reason: str = ""


@dataclass(frozen=True)
class CaptionReceived:
    """``caption``: live captions of what someone said."""

    participant_id: str
    name: str
    text: str
    start: float
    end: float
    final: bool


@dataclass(frozen=True)
class SpeakingChanged:
    """``speaking``: a room-mate started or stopped speaking (from audio levels)."""

    participant_id: str
    speaking: bool


@dataclass(frozen=True)
class ErrorMessage:
    """``error``: something the client sent was refused."""

    code: str
    message: str


@dataclass(frozen=True)
class Bye:
    """``bye``: the SFU ends this participant's session."""

    reason: str


@dataclass(frozen=True)
class Reconnect:
    """``reconnect``: the node gives the meeting up; ask the control plane where it is now."""

    reason: str


@dataclass(frozen=True)
class UnknownMessage:
    """A frame of a type this client does not know (kept for logging)."""

    type: str
    body: Mapping[str, Any] = field(default_factory=dict)


ServerMessage = (
    Joined
    | PublishAnswer
    | SubscribeOffer
    | ParticipantJoined
    | ParticipantUpdated
    | ParticipantLeft
    | ChatReceived
    | LobbyUpdated
    | RoomChanged
    | PermissionsChanged
    | Moderated
    | RecordingChanged
    | CaptionReceived
    | SpeakingChanged
    | ErrorMessage
    | Bye
    | Reconnect
    | UnknownMessage
)


def _str(
    message: Mapping[str, Any], key: str, *, default: str | None = None, where: str | None = None
) -> str:
    value = message.get(key, default)
    if not isinstance(value, str):
        owner = where or f"'{message.get('type', '?')}'"
        raise ProtocolError(f"{owner} needs a string '{key}'")
    return value


def _bool(message: Mapping[str, Any], key: str) -> bool:
    value = message.get(key, False)
    if not isinstance(value, bool):
        raise ProtocolError(f"'{key}' must be a boolean")
    return value


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProtocolError(f"{what} must be a list")
    return value


def _optional_str(message: Mapping[str, Any], key: str) -> str | None:
    value = message.get(key)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(f"'{key}' must be a string or null")
    return value


def _time(message: Mapping[str, Any], key: str) -> datetime | None:
    value = _optional_str(message, key)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ProtocolError(f"'{key}' is not an ISO 8601 time: {value!r}") from exc


def _number(message: Mapping[str, Any], key: str) -> float:
    value = message.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"'{key}' must be a number")
    return float(value)


def _recording_id(value: object) -> str | None:
    if value is None:
        return None
    return _str(_object(value, "'recording'"), "recording_id", where="'recording'")


def _room_id(value: object) -> str | None:
    # A participant's room is an id; accept a {id, name} object as well.
    if value is None or isinstance(value, str):
        return value or None
    return _room(value).id if value else None


def _room(value: object) -> RoomInfo:
    body = _object(value, "'room'")
    room_id = _str(body, "id", where="a room")
    return RoomInfo(id=room_id, name=_str(body, "name", default=room_id, where="a room"))


def _optional_room(value: object) -> RoomInfo | None:
    if value is None:
        return None
    if isinstance(value, str):
        return RoomInfo(id=value, name=value) if value else None
    return _room(value)


def _participant(value: object) -> ParticipantInfo:
    body = _object(value, "'participant'")
    return ParticipantInfo(
        participant_id=_str(body, "participant_id"),
        name=_str(body, "name", default=""),
        role=_str(body, "role", default="participant"),
        audio_muted=_bool(body, "audio_muted"),
        video_muted=_bool(body, "video_muted"),
        room=_room_id(body.get("room")),
    )


_PERMISSION_NAMES = tuple(f.name for f in fields(Permissions))


def parse_permissions(value: object) -> Permissions:
    """Parse a ``permissions`` object; flags this client does not know are ignored."""
    if value is None:
        return Permissions()
    body = _object(value, "'permissions'")
    flags: dict[str, bool] = {}
    for name in _PERMISSION_NAMES:
        if name in body:
            flag = body[name]
            if not isinstance(flag, bool):
                raise ProtocolError(f"permission '{name}' must be a boolean")
            flags[name] = flag
    return Permissions(**flags)


def parse_chat_message(value: object) -> ChatMessage:
    """Parse a ``chat_message`` object (signaling ``chat`` frame or the REST history)."""
    body = _object(value, "a chat message")
    return ChatMessage(
        id=_str(body, "id", default="", where="a chat message"),
        sender_id=_str(body, "sender_id", where="a chat message"),
        sender_name=_str(body, "sender_name", default="", where="a chat message"),
        text=_str(body, "text", where="a chat message"),
        to=_optional_str(body, "to") or None,
        sent_at=_time(body, "sent_at"),
    )


def parse_waiting_participant(value: object) -> WaitingParticipant:
    """Parse one ``{participant_id, name, email, since}`` of the lobby."""
    body = _object(value, "a waiting participant")
    return WaitingParticipant(
        participant_id=_str(body, "participant_id", where="a waiting participant"),
        name=_str(body, "name", default="", where="a waiting participant"),
        email=_optional_str(body, "email") or None,
        since=_time(body, "since"),
    )


def _track(value: object) -> TrackInfo:
    body = _object(value, "a track")
    kind = body.get("kind")
    if kind not in ("audio", "video"):
        raise ProtocolError("a track's 'kind' must be audio or video")
    return TrackInfo(
        mid=_str(body, "mid"),
        track_id=_str(body, "track_id", default=""),
        participant_id=_str(body, "participant_id"),
        kind=kind,
        source=_str(body, "source", default="camera" if kind == "video" else "microphone"),
    )


def parse_ice_servers(value: object) -> tuple[IceServerInfo, ...]:
    """Parse a list of ``{urls, username?, credential?}`` (``urls`` a string or a list)."""
    if value is None:
        return ()
    servers = []
    for item in _list(value, "'ice_servers'"):
        body = _object(item, "an ICE server")
        urls = body.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise ProtocolError("an ICE server needs 'urls': a string or a list of strings")
        username = body.get("username")
        credential = body.get("credential")
        if username is not None and not isinstance(username, str):
            raise ProtocolError("an ICE server's 'username' must be a string")
        if credential is not None and not isinstance(credential, str):
            raise ProtocolError("an ICE server's 'credential' must be a string")
        servers.append(IceServerInfo(tuple(urls), username, credential))
    return tuple(servers)


def parse_server_message(frame: str | bytes) -> ServerMessage:
    """Parse one SFU->client frame; raise ProtocolError when it is out of shape."""
    if len(frame) > MAX_SERVER_FRAME_BYTES:
        raise ProtocolError(f"frame is larger than {MAX_SERVER_FRAME_BYTES} bytes")
    try:
        decoded = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"frame is not valid JSON: {exc}") from exc
    message = _object(decoded, "frame")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("frame needs a string 'type'")
    if kind == "joined":
        return Joined(
            participant_id=_str(message, "participant_id"),
            meeting_id=_str(message, "meeting_id", default=""),
            name=_str(message, "name", default=""),
            role=_str(message, "role", default="participant"),
            ice_servers=parse_ice_servers(message.get("ice_servers")),
            participants=tuple(
                _participant(p) for p in _list(message.get("participants", []), "'participants'")
            ),
            permissions=parse_permissions(message.get("permissions")),
            room=_optional_room(message.get("room")),
            recording_id=_recording_id(message.get("recording")),
        )
    if kind == "publish-answer":
        return PublishAnswer(sdp=_str(message, "sdp"))
    if kind == "subscribe-offer":
        return SubscribeOffer(
            sdp=_str(message, "sdp"),
            tracks=tuple(_track(t) for t in _list(message.get("tracks", []), "'tracks'")),
        )
    if kind == "participant-joined":
        return ParticipantJoined(_participant(message.get("participant")))
    if kind == "participant-updated":
        return ParticipantUpdated(_participant(message.get("participant")))
    if kind == "participant-left":
        return ParticipantLeft(
            participant_id=_str(message, "participant_id"),
            reason=_str(message, "reason", default=""),
        )
    if kind == "chat":
        return ChatReceived(parse_chat_message(message.get("message")))
    if kind == "lobby":
        return LobbyUpdated(
            tuple(
                parse_waiting_participant(w) for w in _list(message.get("waiting", []), "'waiting'")
            )
        )
    if kind == "room-changed":
        return RoomChanged(
            room=_optional_room(message.get("room")), closes_at=_time(message, "closes_at")
        )
    if kind == "permissions-changed":
        return PermissionsChanged(
            role=_str(message, "role"), permissions=parse_permissions(message.get("permissions"))
        )
    if kind == "moderation":
        target = message.get("kind")
        if target is not None and target not in ("audio", "video"):
            raise ProtocolError("'moderation' 'kind' must be audio or video")
        return Moderated(
            action=_str(message, "action"), kind=target, by=_str(message, "by", default="")
        )
    if kind == "recording":
        state = message.get("state")
        if state not in ("started", "stopped", "failed"):
            raise ProtocolError("'recording' 'state' must be started, stopped or failed")
        return RecordingChanged(
            state=state,
            recording_id=_str(message, "recording_id"),
            reason=_optional_str(message, "reason") or "",
        )
    if kind == "caption":
        return CaptionReceived(
            participant_id=_str(message, "participant_id"),
            name=_str(message, "name", default=""),
            text=_str(message, "text"),
            start=_number(message, "start"),
            end=_number(message, "end"),
            final=bool(message.get("final", True)),
        )
    if kind == "speaking":
        return SpeakingChanged(
            participant_id=_str(message, "participant_id"), speaking=_bool(message, "speaking")
        )
    if kind == "error":
        return ErrorMessage(
            code=_str(message, "code", default="error"),
            message=_str(message, "message", default=""),
        )
    if kind == "bye":
        return Bye(reason=_str(message, "reason", default=""))
    if kind == "reconnect":
        return Reconnect(reason=_str(message, "reason", default=""))
    return UnknownMessage(type=kind, body=message)
