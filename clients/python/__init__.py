"""Townhall's Python client: join a meeting, publish, receive, as a bot, a test or a benchmark.

It speaks the signaling protocol of `townhall.contract` and imports nothing
else from the project.
"""

from .api import BreakoutRoom, BreakoutRooms, MeetingApi
from .errors import (
    AccessDenied,
    ApiError,
    ClientError,
    ClientTimeout,
    JoinError,
    LobbyDenied,
    LobbyTimeout,
    MeetingFull,
    ServerError,
    SessionClosed,
    SignalingError,
)
from .events import EventStream, RemoteTrack, SessionEnded, TrackAdded, TrackRemoved
from .joining import JoinGrant, LobbyTicket, parse_join_url, request_guest_join
from .messages import (
    CaptionReceived,
    ChatMessage,
    ChatReceived,
    ErrorMessage,
    LobbyUpdated,
    Moderated,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    Permissions,
    PermissionsChanged,
    RecordingChanged,
    RoomChanged,
    RoomInfo,
    SpeakingChanged,
    TrackInfo,
    WaitingParticipant,
)
from .rtp_tap import RtpTap, TappedPacket
from .session import ClientOptions, Participant

__all__ = [
    "AccessDenied",
    "ApiError",
    "BreakoutRoom",
    "BreakoutRooms",
    "ChatMessage",
    "CaptionReceived",
    "ChatReceived",
    "ClientError",
    "ClientOptions",
    "ClientTimeout",
    "ErrorMessage",
    "EventStream",
    "JoinError",
    "JoinGrant",
    "LobbyDenied",
    "LobbyTicket",
    "LobbyTimeout",
    "LobbyUpdated",
    "MeetingApi",
    "MeetingFull",
    "Moderated",
    "RecordingChanged",
    "SpeakingChanged",
    "Participant",
    "ParticipantInfo",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantUpdated",
    "Permissions",
    "PermissionsChanged",
    "RemoteTrack",
    "RoomChanged",
    "RoomInfo",
    "RtpTap",
    "ServerError",
    "SessionClosed",
    "SessionEnded",
    "SignalingError",
    "TappedPacket",
    "TrackAdded",
    "TrackInfo",
    "TrackRemoved",
    "WaitingParticipant",
    "parse_join_url",
    "request_guest_join",
]
