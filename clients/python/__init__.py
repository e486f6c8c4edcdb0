"""Townhall's Python client: join a meeting, publish, receive, as a bot, a test or a benchmark.

It speaks the signaling protocol of `townhall.contract` and imports nothing
else from the project.
"""

from .errors import (
    ClientError,
    ClientTimeout,
    JoinError,
    ServerError,
    SessionClosed,
    SignalingError,
)
from .events import EventStream, RemoteTrack, SessionEnded, TrackAdded, TrackRemoved
from .joining import JoinGrant, parse_join_url, request_guest_join
from .messages import (
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    TrackInfo,
)
from .rtp_tap import RtpTap, TappedPacket
from .session import ClientOptions, Participant

__all__ = [
    "ClientError",
    "ClientOptions",
    "ClientTimeout",
    "EventStream",
    "JoinError",
    "JoinGrant",
    "Participant",
    "ParticipantInfo",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantUpdated",
    "RemoteTrack",
    "RtpTap",
    "ServerError",
    "SessionClosed",
    "SessionEnded",
    "SignalingError",
    "TappedPacket",
    "TrackAdded",
    "TrackInfo",
    "TrackRemoved",
    "parse_join_url",
    "request_guest_join",
]
