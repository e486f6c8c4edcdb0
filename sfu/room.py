"""A meeting's room on this node: who is in it and which tracks go to whom."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .config import SfuConfig
from .errors import RoomFull
from .forwarder import PublishedTrack
from .metrics import MediaCounters
from .participant import Participant

logger = logging.getLogger(__name__)

SENDER_REPORT_INTERVAL_S = 1.0
LEFT = "left"  # the reason when a participant leaves by itself


class Room:
    """Participants of one meeting and the routing of their tracks."""

    def __init__(self, meeting_id: str, config: SfuConfig, counters: MediaCounters) -> None:
        self.meeting_id = meeting_id
        self._config = config
        self._counters = counters
        self.participants: dict[str, Participant] = {}
        self._reports: asyncio.Task[None] | None = None

    @property
    def tracks(self) -> list[PublishedTrack]:
        return [t for p in self.participants.values() for t in p.publisher.tracks.values()]

    async def admit(self, participant: Participant) -> None:
        """Welcome a participant, tell the others, and subscribe it to what is published."""
        previous = self.participants.get(participant.participant_id)
        if previous is not None:
            # The same participant reconnected (a new tab, a network change).
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
        if participant.can_subscribe:
            for track in self.tracks:
                if track.participant_id != participant.participant_id:
                    participant.subscriber.subscribe(track)
        if self._reports is None:
            self._reports = asyncio.create_task(self._send_reports())

    async def remove(self, participant: Participant, reason: str) -> None:
        """Take a participant out: its tracks stop, the others are told."""
        if self.participants.get(participant.participant_id) is not participant:
            return
        del self.participants[participant.participant_id]
        if reason != LEFT:
            # Removed by someone else (a new connection, the node closing): say why.
            participant.send({"type": "bye", "reason": reason})
        await participant.close()
        self.broadcast(
            {
                "type": "participant-left",
                "participant_id": participant.participant_id,
                "reason": reason,
            }
        )

    def on_published(self, track: PublishedTrack) -> None:
        for participant in self.participants.values():
            if participant.participant_id != track.participant_id and participant.can_subscribe:
                participant.subscriber.subscribe(track)

    def on_unpublished(self, track: PublishedTrack) -> None:
        for participant in self.participants.values():
            participant.subscriber.unsubscribe(track.track_id)

    def on_updated(self, participant: Participant) -> None:
        self.broadcast({"type": "participant-updated", "participant": participant.describe()})

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

    async def close(self, reason: str) -> None:
        for participant in list(self.participants.values()):
            await self.remove(participant, reason)
        if self._reports is not None:
            self._reports.cancel()
