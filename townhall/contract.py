"""The contract between the control plane and the SFU: tokens, signaling, ports.

This is the only module that both planes import. It defines:

* the join token: a short-lived JWT (HS256) minted by the control plane and
  verified by the SFU when a participant connects;
* the signaling protocol spoken over the SFU's WebSocket (JSON text frames);
* the two ports between the planes: ``MediaPlane`` (what the control plane
  asks of the SFU: remove, mute, end, change permissions, move between
  breakout rooms, deliver a message) and ``ControlEvents`` (what the SFU tells
  the control plane: who connected and left, chat to persist). In
  ``townhall serve`` both are in-process calls; in a cluster they cross Redis.

Signaling protocol
------------------
A client opens ``signaling_url`` (a WebSocket) and sends, within
``JOIN_TIMEOUT_S`` seconds, ``{"type": "join", "token": "<jwt>"}``. Every frame
is one JSON object with a ``type``. Each participant uses two peer connections,
as LiveKit does, so that offers never collide (no glare):

* the *publish* connection: the client offers (``sendonly`` audio/video), the
  SFU answers;
* the *subscribe* connection: the SFU offers one ``sendonly`` m-section per
  remote track, the client answers. The SFU sends at most one offer at a time
  and waits for the answer before the next.

Client -> SFU:

``join``             ``{token}``                      first frame, once
``publish-offer``    ``{sdp, sources?: {mid: source}}`` source is camera|microphone|screen
``subscribe-answer`` ``{sdp}``
``mute``             ``{kind: "audio"|"video", muted: bool}``
``chat``             ``{text, to?: participant_id}``  needs the chat permission
``record``           ``{action: "start"|"stop"}``     needs the record permission
``leave``            ``{}``

SFU -> client:

``joined``              ``{participant_id, meeting_id, name, role, permissions, room,
                          recording: {recording_id} | null, ice_servers,
                          participants: [participant]}``
``publish-answer``      ``{sdp}``
``subscribe-offer``     ``{sdp, tracks: [{mid, track_id, participant_id, kind, source}]}``
``participant-joined``  ``{participant}``
``participant-updated`` ``{participant}``
``participant-left``    ``{participant_id, reason}``
``chat``                ``{message: chat_message}``
``lobby``               ``{waiting: [{participant_id, name, email, since}]}``  hosts only
``room-changed``        ``{room: {id, name} | null, closes_at: iso8601 | null}``
                        null room: the main meeting; closes_at: a breakout countdown
``permissions-changed`` ``{role, permissions}``  e.g. promoted to host, policy changed
``moderation``          ``{action: "mute", kind, by}``  a host muted this participant
``recording``           ``{state: "started"|"stopped"|"failed", recording_id, reason}``
                        to everyone: people must know they are recorded
``caption``             ``{participant_id, name, text, start, end, final}``  live captions
``speaking``            ``{participant_id, speaking}``  from audio levels, to room-mates
``error``               ``{code, message}``  (the socket is then closed when fatal)
``bye``                 ``{reason}``  the SFU ends this participant's session
``reconnect``           ``{reason}``  this node gives the meeting up (draining with
                        migration, or it lost the meeting's lease): the client
                        asks the control plane where to go (``POST
                        /api/v1/meetings/{id}/participants/{pid}/reconnect``)
                        and joins there, republishing its tracks. A client does
                        the same when the socket drops without ``bye``.

``participant`` is ``{participant_id, name, role, audio_muted, video_muted, room,
speaking_s}``
where ``room`` is the breakout room id or null; a participant sees and hears
only the participants in the same room. ``chat_message`` is ``{id, sender_id,
sender_name, text, to, sent_at}`` (``to`` null: everyone in the meeting).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

import jwt

__all__ = [
    "Audience",
    "CLIENT_MESSAGE_TYPES",
    "ChatRefused",
    "ControlEvents",
    "ControlUnavailable",
    "MeetingElsewhere",
    "MAX_CHAT_CHARS",
    "MediaPlane",
    "JOIN_TIMEOUT_S",
    "JoinRefused",
    "MAX_SIGNAL_FRAME_BYTES",
    "Permissions",
    "ProtocolError",
    "Recorder",
    "RecordingRefused",
    "RecordingEvents",
    "RecordingSession",
    "TappedTrack",
    "TrackTap",
    "SIGNALING_PATH",
    "Role",
    "TokenClaims",
    "TokenError",
    "mint_token",
    "parse_client_message",
    "verify_token",
]

Role = Literal["host", "participant", "viewer"]
ROLES: tuple[str, ...] = ("host", "participant", "viewer")
TOKEN_ISSUER = "townhall"
TOKEN_ALGORITHM = "HS256"
JOIN_TIMEOUT_S = 10.0
# Where an SFU node serves the signaling WebSocket, relative to its base URL.
SIGNALING_PATH = "/sfu/ws"
MAX_SIGNAL_FRAME_BYTES = 256 * 1024

SOURCES = ("camera", "microphone", "screen")
CLIENT_MESSAGE_TYPES = (
    "join",
    "publish-offer",
    "subscribe-answer",
    "mute",
    "chat",
    "record",
    "leave",
)
MAX_CHAT_CHARS = 2000


class TokenError(Exception):
    """A join token is malformed, forged, expired or for another meeting."""


class ProtocolError(Exception):
    """A signaling frame is not valid JSON or does not match the protocol."""


@dataclass(frozen=True)
class Permissions:
    """What a participant may do once connected; the SFU enforces it."""

    publish: bool = True
    subscribe: bool = True
    chat: bool = True
    screen_share: bool = True
    record: bool = False

    def to_claim(self) -> dict[str, bool]:
        return {
            "publish": self.publish,
            "subscribe": self.subscribe,
            "chat": self.chat,
            "screen_share": self.screen_share,
            "record": self.record,
        }

    @classmethod
    def from_claim(cls, value: object) -> Permissions:
        if not isinstance(value, dict):
            raise TokenError("claim 'perm' must be an object")
        known = cls().to_claim()
        for key, flag in value.items():
            if key not in known or not isinstance(flag, bool):
                raise TokenError(f"claim 'perm.{key}' is not a known boolean permission")
        return cls(**{**known, **value})


@dataclass(frozen=True)
class TokenClaims:
    """Who may join which meeting, as the control plane vouches."""

    meeting_id: str
    participant_id: str
    identity: str
    name: str
    role: Role
    permissions: Permissions = field(default_factory=Permissions)
    expires_at: int = 0


def mint_token(claims: TokenClaims, secret: str, ttl_s: int = 600) -> str:
    """Sign a join token valid for ``ttl_s`` seconds."""
    now = int(time.time())
    payload = {
        "iss": TOKEN_ISSUER,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + ttl_s,
        "mtg": claims.meeting_id,
        "pid": claims.participant_id,
        "sub": claims.identity,
        "name": claims.name,
        "role": claims.role,
        "perm": claims.permissions.to_claim(),
    }
    return jwt.encode(payload, secret, algorithm=TOKEN_ALGORITHM)


def verify_token(token: str, secret: str) -> TokenClaims:
    """Check signature, expiry and shape of a join token; raise TokenError."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[TOKEN_ALGORITHM],
            issuer=TOKEN_ISSUER,
            options={"require": ["exp", "iat", "iss", "mtg", "pid", "sub", "role"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token has expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token: {exc}") from exc
    for key in ("mtg", "pid", "sub", "name"):
        if not isinstance(payload.get(key, ""), str):
            raise TokenError(f"claim '{key}' must be a string")
    role = payload["role"]
    if role not in ROLES:
        raise TokenError(f"claim 'role' must be one of {', '.join(ROLES)}")
    return TokenClaims(
        meeting_id=payload["mtg"],
        participant_id=payload["pid"],
        identity=payload["sub"],
        name=payload.get("name", "") or payload["sub"],
        role=cast(Role, role),
        permissions=Permissions.from_claim(payload.get("perm", {})),
        expires_at=int(payload["exp"]),
    )


def _require_str(message: dict[str, Any], key: str, limit: int) -> str:
    value = message.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"'{message['type']}' needs a non-empty string '{key}'")
    if len(value) > limit:
        raise ProtocolError(f"'{key}' is longer than {limit} characters")
    return value


def parse_client_message(frame: str | bytes) -> dict[str, Any]:
    """Validate one client->SFU frame and return it as a dict; raise ProtocolError."""
    import json

    if len(frame) > MAX_SIGNAL_FRAME_BYTES:
        raise ProtocolError(f"frame is larger than {MAX_SIGNAL_FRAME_BYTES} bytes")
    try:
        message = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"frame is not valid JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError("frame must be a JSON object")
    kind = message.get("type")
    if kind not in CLIENT_MESSAGE_TYPES:
        raise ProtocolError(f"unknown message type {kind!r}")
    if kind == "join":
        _require_str(message, "token", 8192)
    elif kind in ("publish-offer", "subscribe-answer"):
        _require_str(message, "sdp", MAX_SIGNAL_FRAME_BYTES)
        sources = message.get("sources", {})
        if not isinstance(sources, dict) or any(
            not isinstance(k, str) or v not in SOURCES for k, v in sources.items()
        ):
            raise ProtocolError(f"'sources' must map mids to one of {', '.join(SOURCES)}")
    elif kind == "chat":
        _require_str(message, "text", MAX_CHAT_CHARS)
        to = message.get("to")
        if to is not None and (not isinstance(to, str) or not to):
            raise ProtocolError("'to' must be a participant id")
    elif kind == "record":
        if message.get("action") not in ("start", "stop"):
            raise ProtocolError("'record' needs 'action' start or stop")
    elif kind == "mute":
        if message.get("kind") not in ("audio", "video"):
            raise ProtocolError("'mute' needs 'kind' audio or video")
        if not isinstance(message.get("muted"), bool):
            raise ProtocolError("'mute' needs a boolean 'muted'")
    return message


# What a message from the control plane is addressed to: everyone in the
# meeting, its hosts, or the listed participants.
Audience = Literal["all", "hosts"] | tuple[str, ...]


class MediaPlane(Protocol):
    """What the control plane asks of the SFU node hosting a meeting.

    Each method acts on the participants connected now; one that is not
    connected is not an error (it returns False or does nothing).
    """

    async def remove_participant(self, meeting_id: str, participant_id: str, reason: str) -> bool:
        """Disconnect a participant with ``bye {reason}``."""
        ...

    async def mute_participant(
        self, meeting_id: str, participant_id: str, kind: str, by: str = "a host"
    ) -> bool:
        """Stop forwarding a participant's audio or video and tell them who did it."""
        ...

    async def end_meeting(self, meeting_id: str, reason: str) -> None:
        """Disconnect everyone in a meeting."""
        ...

    async def set_permissions(
        self, meeting_id: str, participant_id: str, role: Role, permissions: Permissions
    ) -> bool:
        """Change what a connected participant may do, at once (``permissions-changed``)."""
        ...

    async def assign_rooms(
        self,
        meeting_id: str,
        rooms: dict[str, tuple[str, str] | None],
        closes_at: str | None = None,
    ) -> None:
        """Move participants between breakout rooms: participant id -> (room id, name) or None.

        Media is re-routed over the participants' existing connections; each
        moved participant gets ``room-changed``.
        """
        ...

    async def send(self, meeting_id: str, message: dict[str, Any], to: Audience) -> None:
        """Deliver one signaling frame (chat, lobby, ...) to an audience."""
        ...

    def roster(self, meeting_id: str) -> list[dict[str, Any]]:
        """The ``participant`` objects of everyone connected to the meeting now."""
        ...

    def node_stats(self) -> dict[str, Any]:
        """Node-wide load and media counters (no per-participant data).

        ``{meetings, participants, tracks, forwarded_packets_per_s, loop_lag_ms,
        counters: {rtp_packets_in, rtp_packets_forwarded, rtp_bytes_in,
        rtp_bytes_forwarded, rtp_malformed, rtcp_malformed, nacks_received,
        retransmissions_sent, keyframe_requests_received,
        keyframe_requests_sent, ...}, quality: {loss_up, loss_down, jitter_ms,
        rtt_ms}}`` where the quality figures are means over connected
        participants. Counters only ever grow.
        """
        ...

    def meeting_stats(self, meeting_id: str) -> dict[str, Any] | None:
        """A meeting's live numbers, per participant; None when not on this node.

        ``{meeting_id, participants: [{participant_id, name, connection_state,
        rtt_ms, jitter_up_ms, jitter_down_ms, loss_up, loss_down,
        bitrate_up_kbps, bitrate_down_kbps, audio_quality, video_quality,
        speaking, speaking_s}], engagement: {speaking_s_total, active_speakers,
        participants}}``; loss is a fraction 0..1 (up: publisher to SFU, from
        the SFU's own receiver statistics; down: SFU to subscriber, from the
        subscriber's RTCP receiver reports); quality scores are 0..5.
        """
        ...

    async def start_recording(
        self, meeting_id: str, recording_id: str, options: dict[str, Any]
    ) -> bool:
        """Tap every track of the meeting into the node's Recorder; tell everyone.

        False when the meeting is not on this node, already records, or the
        node has no Recorder. Errors of ``Recorder.start`` (bad options such as
        encryption without a key) propagate, with nothing started.
        """
        ...

    async def stop_recording(self, meeting_id: str) -> str | None:
        """Stop the meeting's recording; return its id, or None if none was running."""
        ...


class ChatRefused(Exception):
    """The control plane would not accept a chat message (permission, rate, size).

    ``code`` is the signaling error code the sender gets: ``forbidden``,
    ``rate_limited`` or ``invalid_chat``.
    """

    def __init__(self, message: str, code: str = "forbidden") -> None:
        super().__init__(message)
        self.code = code


class RecordingRefused(Exception):
    """The control plane would not start or stop a recording (policy, state)."""


class JoinRefused(Exception):
    """The control plane refuses a connection whose token is still valid.

    For example the participant was removed or blocked, or the meeting ended.
    The SFU closes the socket (4403 ``access_denied``) before ``joined``.
    """


class MeetingElsewhere(Exception):
    """This node does not host the meeting: its lease is held by another node,
    or this node is draining and takes no new meetings.

    The SFU sends ``reconnect`` and closes the socket: the client asks the
    control plane where the meeting is now.
    """


class ControlUnavailable(Exception):
    """The control plane cannot be reached (cluster mode, Redis down).

    The SFU refuses the connection (``unavailable``, close code 4503) rather
    than admitting someone nobody checked; the client retries later.
    """


class ControlEvents(Protocol):
    """What the SFU tells the control plane."""

    async def participant_connected(self, meeting_id: str, participant_id: str) -> None:
        """Called before the participant is admitted; may raise JoinRefused."""
        ...

    async def participant_disconnected(
        self, meeting_id: str, participant_id: str, reason: str
    ) -> None: ...

    async def recording_requested(self, meeting_id: str, participant_id: str, action: str) -> None:
        """A participant asked over signaling to start or stop recording.

        The control plane checks the meeting's policy and, if allowed, calls
        ``MediaPlane.start_recording``/``stop_recording``; raises
        RecordingRefused otherwise.
        """
        ...

    async def chat_posted(
        self, meeting_id: str, sender_id: str, text: str, to: str | None
    ) -> dict[str, Any]:
        """Persist a chat message sent over signaling; return the ``chat_message`` to deliver.

        Raises ChatRefused. The SFU delivers the returned message itself.
        """
        ...


# -- Recording: the SFU taps encoded media, the recorder turns it into files ----


@dataclass(frozen=True)
class TappedTrack:
    """A published track, as a recorder sees it."""

    meeting_id: str
    participant_id: str
    participant_name: str
    track_id: str
    kind: str  # "audio" | "video"
    source: str  # "camera" | "microphone" | "screen"
    codec: str  # "opus", "VP8", "H264"
    clock_rate: int


class TrackTap(Protocol):
    """Receives one track's RTP payloads as the SFU forwards them.

    Called on the SFU's event loop for every packet: it must only queue the
    packet (no I/O, no decoding, no blocking). Packets arrive in arrival
    order, which may differ from sequence order (loss, retransmissions).
    """

    def packet(
        self,
        sequence_number: int,
        timestamp: int,
        marker: bool,
        payload: bytes,
        arrival_s: float,
    ) -> None: ...

    def muted(self, muted: bool, at_s: float) -> None:
        """The publisher (or a host) muted or unmuted the track."""
        ...

    def close(self, at_s: float) -> None:
        """The track ended (its publisher left or unpublished it)."""
        ...


class RecordingSession(Protocol):
    """One recording of one meeting, fed by the SFU node hosting it."""

    recording_id: str

    def track(self, track: TappedTrack) -> TrackTap | None:
        """A tap for a track now being forwarded, or None to leave it out."""
        ...

    async def stop(self) -> None:
        """Close every file; the recorder reports the result (RecordingEvents)."""
        ...


class Recorder(Protocol):
    """Opens recording sessions; lives in the process of the SFU node."""

    def start(
        self, meeting_id: str, recording_id: str, options: dict[str, Any]
    ) -> RecordingSession: ...


class RecordingEvents(Protocol):
    """What the recorder tells the control plane (which keeps the records)."""

    async def recording_finished(
        self, meeting_id: str, recording_id: str, result: dict[str, Any]
    ) -> None:
        """``result``: ``{status: "completed"|"failed", error, files: [...]}``."""
        ...

    async def transcript_ready(
        self, meeting_id: str, recording_id: str, transcript: dict[str, Any]
    ) -> None: ...

    async def summary_ready(
        self, meeting_id: str, recording_id: str, summary: dict[str, Any]
    ) -> None: ...
