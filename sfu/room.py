"""A meeting's room on this node: who is in it and which tracks go to whom.

Breakout rooms are groups inside the meeting's room: a participant sees and
hears only the participants in the same group (the main meeting is the group
``None``). Moving someone re-routes media over the connections they have.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import uuid
from collections.abc import Callable
from typing import Any

from townhall.contract import (
    Audience,
    ChatRefused,
    ControlEvents,
    RecordingRefused,
    RecordingSession,
)

from .config import SfuConfig
from .errors import ChatFailed, Forbidden, RoomFull
from .forwarder import PublishedTrack
from .metrics import MediaCounters
from .participant import Participant
from .recording import RoomRecording

logger = logging.getLogger(__name__)

SENDER_REPORT_INTERVAL_S = 1.0
LEFT = "left"  # the reason when a participant leaves by itself
MOVED = "moved"  # the reason when the meeting moves to another node (no ``bye``)


class Room:
    """Participants of one meeting and the routing of their tracks."""

    def __init__(
        self,
        meeting_id: str,
        config: SfuConfig,
        counters: MediaCounters,
        events: Callable[[], ControlEvents | None] = lambda: None,
    ) -> None:
        self.meeting_id = meeting_id
        self._config = config
        self._counters = counters
        self._events = events
        self.participants: dict[str, Participant] = {}
        self.recording: RoomRecording | None = None
        self._reports: asyncio.Task[None] | None = None

    @property
    def tracks(self) -> list[PublishedTrack]:
        return [t for p in self.participants.values() for t in p.publisher.tracks.values()]

    async def admit(self, participant: Participant) -> None:
        """Welcome a participant, tell the others, and subscribe it to what is published."""
        previous = self.participants.get(participant.participant_id)
        if previous is not None:
            # The same participant reconnected (a new tab, a network change).
            participant.breakout_room = previous.breakout_room
            await self.remove(previous, "replaced by a new connection")
        if len(self.participants) >= self._config.max_participants_per_meeting:
            raise RoomFull(
                f"meeting {self.meeting_id} already has "
                f"{self._config.max_participants_per_meeting} participants on this node"
            )
        participant.room = self
        self.participants[participant.participant_id] = participant
        participant.send(
            {
                "type": "joined",
                "participant_id": participant.participant_id,
                "meeting_id": self.meeting_id,
                "name": participant.name,
                "role": participant.role,
                "permissions": participant.permissions.to_claim(),
                "room": self._describe_room(participant),
                "recording": self._describe_recording(),
                "ice_servers": [
                    {"urls": list(s.urls), "username": s.username, "credential": s.credential}
                    for s in self._config.ice_servers
                ],
                "participants": [p.describe() for p in self.participants.values()],
            }
        )
        self.broadcast(
            {"type": "participant-joined", "participant": participant.describe()},
            exclude=participant,
        )
        self._route(participant)
        if self._reports is None:
            self._reports = asyncio.create_task(self._send_reports())

    async def remove(self, participant: Participant, reason: str) -> None:
        """Take a participant out: its tracks stop, the others are told."""
        if self.participants.get(participant.participant_id) is not participant:
            return
        del self.participants[participant.participant_id]
        participant.end_reason = reason
        if reason not in (LEFT, MOVED):
            # Removed by someone else (a host, a new connection, the node closing): say why.
            participant.send({"type": "bye", "reason": reason})
        await participant.close()
        self.broadcast(
            {
                "type": "participant-left",
                "participant_id": participant.participant_id,
                "reason": reason,
            }
        )

    def _route(self, subscriber: Participant) -> None:
        """Subscribe ``subscriber`` to exactly the tracks of its room-mates."""
        wanted: dict[str, PublishedTrack] = {}
        if subscriber.can_subscribe:
            for other in self.participants.values():
                if other is not subscriber and other.breakout_id == subscriber.breakout_id:
                    for track in other.publisher.tracks.values():
                        wanted[track.track_id] = track
        for track_id in list(subscriber.subscriber.subscriptions):
            if track_id not in wanted:
                subscriber.subscriber.unsubscribe(track_id)
        for track in wanted.values():
            subscriber.subscriber.subscribe(track)

    def on_published(self, track: PublishedTrack) -> None:
        if self.recording is not None:
            self.recording.tap(track)
        publisher = self.participants.get(track.participant_id)
        for participant in self.participants.values():
            if (
                participant is not publisher
                and participant.can_subscribe
                and publisher is not None
                and participant.breakout_id == publisher.breakout_id
            ):
                participant.subscriber.subscribe(track)

    def on_unpublished(self, track: PublishedTrack) -> None:
        for participant in self.participants.values():
            participant.subscriber.unsubscribe(track.track_id)

    def on_speaking(self, participant: Participant) -> None:
        """Tell the participant's room-mates who started or stopped speaking."""
        message = {
            "type": "speaking",
            "participant_id": participant.participant_id,
            "speaking": participant.speaking,
        }
        for other in self.participants.values():
            if other.breakout_id == participant.breakout_id:
                other.send(message)

    def on_updated(self, participant: Participant) -> None:
        self.broadcast({"type": "participant-updated", "participant": participant.describe()})

    def assign_rooms(self, rooms: dict[str, tuple[str, str] | None], closes_at: str | None) -> None:
        """Move participants between breakout rooms, then re-route everyone's media."""
        moved = []
        for participant_id, breakout in rooms.items():
            participant = self.participants.get(participant_id)
            if participant is None:
                continue
            participant.breakout_room = breakout
            moved.append(participant)
        for participant in self.participants.values():
            self._route(participant)
        for participant in moved:
            participant.send(
                {
                    "type": "room-changed",
                    "room": self._describe_room(participant),
                    "closes_at": closes_at if participant.breakout_room else None,
                }
            )
            self.on_updated(participant)

    def start_recording(self, session: RecordingSession) -> None:
        """Tap every track into ``session`` and tell everyone they are recorded."""
        self.recording = RoomRecording(self.meeting_id, session, self._name_of)
        for track in self.tracks:
            self.recording.tap(track)
        self.broadcast(
            {"type": "recording", "state": "started", "recording_id": session.recording_id}
        )

    async def stop_recording(self, reason: str = "stopped") -> str | None:
        recording, self.recording = self.recording, None
        if recording is None:
            return None
        self.broadcast(
            {
                "type": "recording",
                "state": "stopped",
                "recording_id": recording.recording_id,
                "reason": reason,
            }
        )
        await recording.stop()
        return recording.recording_id

    async def request_recording(self, participant: Participant, action: str) -> None:
        """A participant asked to start or stop recording: the control plane decides."""
        events = self._events()
        if events is None:
            raise Forbidden("recording needs a control plane, and this node has none")
        try:
            await events.recording_requested(self.meeting_id, participant.participant_id, action)
        except RecordingRefused as exc:
            raise Forbidden(str(exc)) from exc

    def _name_of(self, participant_id: str) -> str:
        participant = self.participants.get(participant_id)
        return participant.name if participant else participant_id

    def _describe_recording(self) -> dict[str, str] | None:
        if self.recording is None:
            return None
        return {"recording_id": self.recording.recording_id}

    @staticmethod
    def _describe_room(participant: Participant) -> dict[str, str] | None:
        if participant.breakout_room is None:
            return None
        room_id, name = participant.breakout_room
        return {"id": room_id, "name": name}

    async def post_chat(self, sender: Participant, text: str, to: str | None) -> None:
        """Have the control plane keep a chat message, then deliver it."""
        events = self._events()
        if events is None:
            # A node without a control plane (tests, tools): nothing to persist in.
            message: dict[str, Any] = {
                "id": uuid.uuid4().hex,
                "sender_id": sender.participant_id,
                "sender_name": sender.name,
                "text": text,
                "to": to,
                "sent_at": datetime.datetime.now(datetime.UTC).isoformat(),
            }
        else:
            try:
                message = await events.chat_posted(self.meeting_id, sender.participant_id, text, to)
            except ChatRefused as exc:
                raise ChatFailed(str(exc), exc.code) from exc
        audience: Audience = "all" if to is None else (sender.participant_id, to)
        self.send({"type": "chat", "message": message}, audience)

    def send(self, message: dict[str, Any], to: Audience) -> None:
        """Deliver a frame to everyone, to the hosts, or to the listed participants."""
        for participant in self.participants.values():
            if (
                to == "all"
                or (to == "hosts" and participant.role == "host")
                or (isinstance(to, tuple) and participant.participant_id in to)
            ):
                participant.send(message)

    def broadcast(self, message: dict[str, Any], exclude: Participant | None = None) -> None:
        for participant in self.participants.values():
            if participant is not exclude:
                participant.send(message)

    async def _send_reports(self) -> None:
        while self.participants:
            await asyncio.sleep(SENDER_REPORT_INTERVAL_S)
            for participant in list(self.participants.values()):
                participant.subscriber.update_sender_reports()
        self._reports = None

    async def hand_over(self, reason: str) -> None:
        """Send everyone elsewhere: each gets ``reconnect`` (not ``bye``) and asks
        the control plane where the meeting is now; the room closes here."""
        await self.stop_recording(reason)
        everyone = list(self.participants.values())
        # Everyone hears first, so that nobody starts renegotiating with a
        # node that is about to close their connections.
        for participant in everyone:
            participant.send({"type": "reconnect", "reason": reason})
        for participant in everyone:
            await self.remove(participant, MOVED)
        if self._reports is not None:
            self._reports.cancel()

    async def close(self, reason: str) -> None:
        await self.stop_recording(reason)
        for participant in list(self.participants.values()):
            await self.remove(participant, reason)
        if self._reports is not None:
            self._reports.cancel()
