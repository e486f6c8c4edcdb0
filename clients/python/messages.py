"""The signaling frames as the client sees them (protocol in `townhall.contract`).

Frames from the SFU are parsed once, here, into small frozen dataclasses;
fields the client does not know are ignored so that the SFU can add some.
Frames to the SFU are built by the ``*_frame`` functions, which produce what
`townhall.contract.parse_client_message` accepts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from townhall.contract import MAX_SIGNAL_FRAME_BYTES, SOURCES, ProtocolError

__all__ = [
    "Bye",
    "ErrorMessage",
    "IceServerInfo",
    "Joined",
    "ParticipantInfo",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantUpdated",
    "PublishAnswer",
    "ServerMessage",
    "SubscribeOffer",
    "TrackInfo",
    "UnknownMessage",
    "join_frame",
    "leave_frame",
    "mute_frame",
    "parse_ice_servers",
    "parse_server_message",
    "publish_offer_frame",
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
class ErrorMessage:
    """``error``: something the client sent was refused."""

    code: str
    message: str


@dataclass(frozen=True)
class Bye:
    """``bye``: the SFU ends this participant's session."""

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
    | ErrorMessage
    | Bye
    | UnknownMessage
)


def _str(message: Mapping[str, Any], key: str, *, default: str | None = None) -> str:
    value = message.get(key, default)
    if not isinstance(value, str):
        raise ProtocolError(f"'{message.get('type', '?')}' needs a string '{key}'")
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


def _participant(value: object) -> ParticipantInfo:
    body = _object(value, "'participant'")
    return ParticipantInfo(
        participant_id=_str(body, "participant_id"),
        name=_str(body, "name", default=""),
        role=_str(body, "role", default="participant"),
        audio_muted=_bool(body, "audio_muted"),
        video_muted=_bool(body, "video_muted"),
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
    if kind == "error":
        return ErrorMessage(
            code=_str(message, "code", default="error"),
            message=_str(message, "message", default=""),
        )
    if kind == "bye":
        return Bye(reason=_str(message, "reason", default=""))
    return UnknownMessage(type=kind, body=message)


def join_frame(token: str) -> dict[str, Any]:
    """The first frame: present the join token."""
    return {"type": "join", "token": token}


def publish_offer_frame(sdp: str, sources: Mapping[str, str]) -> dict[str, Any]:
    """Offer the publish connection; ``sources`` maps each mid to camera|microphone|screen."""
    for mid, source in sources.items():
        if source not in SOURCES:
            raise ValueError(f"source of mid {mid!r} must be one of {', '.join(SOURCES)}")
    return {"type": "publish-offer", "sdp": sdp, "sources": dict(sources)}


def subscribe_answer_frame(sdp: str) -> dict[str, Any]:
    """Answer the SFU's subscribe offer."""
    return {"type": "subscribe-answer", "sdp": sdp}


def mute_frame(kind: Kind, muted: bool) -> dict[str, Any]:
    """Tell the others that this participant's audio or video is (un)muted."""
    return {"type": "mute", "kind": kind, "muted": muted}


def leave_frame() -> dict[str, Any]:
    """Leave the meeting."""
    return {"type": "leave"}
