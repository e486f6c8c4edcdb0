"""The meeting as the SFU describes it to one participant, kept up to date from its frames.

Who is in (``participants``, with their breakout ``room``), this participant's
own ``room``, ``role`` and ``permissions``, the ``lobby`` (hosts only), the
``chat`` and ``captions`` received, the running ``recording_id`` and who is
``speaking`` now. `Participant` is a `MeetingState` with connections.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import TypeGuard

from .messages import (
    CaptionReceived,
    ChatMessage,
    ChatReceived,
    Joined,
    LobbyUpdated,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    Permissions,
    PermissionsChanged,
    RecordingChanged,
    RoomChanged,
    RoomInfo,
    ServerMessage,
    SpeakingChanged,
    WaitingParticipant,
)

__all__ = ["CHAT_KEPT", "MeetingEvent", "MeetingState"]

# How many received chat messages (and captions) a participant keeps.
CHAT_KEPT = 1000


# The frames that change what a participant knows of the meeting (and are events).
MeetingEvent = (
    ParticipantJoined
    | ParticipantUpdated
    | ParticipantLeft
    | ChatReceived
    | LobbyUpdated
    | RoomChanged
    | PermissionsChanged
    | RecordingChanged
    | CaptionReceived
    | SpeakingChanged
)


class MeetingState:
    """What one participant knows of the meeting."""

    def __init__(self) -> None:
        self.participant_id = ""
        self.meeting_id = ""
        self.name = ""
        self.role = ""
        self.participants: dict[str, ParticipantInfo] = {}
        self.permissions = Permissions()
        # The breakout room this participant is in (None: the main meeting).
        self.room: RoomInfo | None = None
        self.room_closes_at: datetime | None = None
        # Who waits in the lobby (sent to hosts only).
        self.lobby: tuple[WaitingParticipant, ...] = ()
        self.chat: deque[ChatMessage] = deque(maxlen=CHAT_KEPT)
        # The recording running now (None: not recorded), live captions, and
        # the room-mates speaking now (from the SFU's audio-level meter).
        self.recording_id: str | None = None
        self.captions: deque[CaptionReceived] = deque(maxlen=CHAT_KEPT)
        self.speaking: set[str] = set()

    def room_mates(self) -> dict[str, ParticipantInfo]:
        """The others in this participant's room (the main meeting when not in a breakout)."""
        here = self.room.id if self.room is not None else None
        return {pid: p for pid, p in self.participants.items() if p.room == here}

    def apply_joined(self, message: Joined) -> None:
        """Start over from a ``joined`` frame (the first join, or a rejoin)."""
        self.participant_id = message.participant_id
        self.meeting_id = message.meeting_id
        self.name = message.name
        self.role = message.role
        self.permissions = message.permissions
        self.room = message.room
        self.recording_id = message.recording_id
        self.participants = {
            p.participant_id: p
            for p in message.participants
            if p.participant_id != self.participant_id
        }
        self.speaking.clear()

    def apply(self, message: ServerMessage) -> TypeGuard[MeetingEvent]:
        """Update from one frame; whether it was one of the meeting's events."""
        if isinstance(message, ParticipantJoined | ParticipantUpdated):
            if message.participant.participant_id != self.participant_id:
                self.participants[message.participant.participant_id] = message.participant
        elif isinstance(message, ParticipantLeft):
            self.participants.pop(message.participant_id, None)
        elif isinstance(message, ChatReceived):
            self.chat.append(message.message)
        elif isinstance(message, LobbyUpdated):
            self.lobby = message.waiting
        elif isinstance(message, RoomChanged):
            self.room = message.room
            self.room_closes_at = message.closes_at
        elif isinstance(message, PermissionsChanged):
            self.role = message.role
            self.permissions = message.permissions
        elif isinstance(message, RecordingChanged):
            self.recording_id = message.recording_id if message.state == "started" else None
        elif isinstance(message, CaptionReceived):
            self.captions.append(message)
        elif isinstance(message, SpeakingChanged):
            if message.speaking:
                self.speaking.add(message.participant_id)
            else:
                self.speaking.discard(message.participant_id)
        else:
            return False
        return True
