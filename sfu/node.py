"""The SFU node: the public face of the media plane.

It serves the signaling WebSocket and implements the contract's
``MediaPlane``: what the control plane asks of the meetings it hosts.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from townhall.contract import (
    SIGNALING_PATH,
    Audience,
    ControlEvents,
    Permissions,
    Recorder,
    Role,
)

from .aiortc_bridge import check_internals
from .config import SfuConfig
from .metrics import MediaCounters
from .room import Room
from .signaling import serve_signaling

logger = logging.getLogger(__name__)


class SfuNode:
    """Hosts meetings' rooms and serves the signaling WebSocket at ``SIGNALING_PATH``."""

    def __init__(
        self, config: SfuConfig, token_secret: str, events: ControlEvents | None = None
    ) -> None:
        check_internals()
        self.config = config
        self.token_secret = token_secret
        # The control plane to tell about joins, leaves and chat; settable later,
        # since the composition root builds both planes.
        self.events = events
        # Turns tapped tracks into files; None: this node cannot record.
        self.recorder: Recorder | None = None
        self.counters = MediaCounters()
        self.rooms: dict[str, Room] = {}

    def routes(self) -> list[web.RouteDef]:
        """Routes to mount on the process's aiohttp application."""
        return [web.get(SIGNALING_PATH, self._signaling)]

    async def _signaling(self, request: web.Request) -> web.WebSocketResponse:
        return await serve_signaling(request, self)

    def room(self, meeting_id: str) -> Room:
        """The room of a meeting on this node, created on first use."""
        room = self.rooms.get(meeting_id)
        if room is None:
            room = Room(meeting_id, self.config, self.counters, lambda: self.events)
            self.rooms[meeting_id] = room
        return room

    async def forget_if_empty(self, room: Room) -> None:
        """Drop a room nobody is in any more (its recording, if any, ends)."""
        if not room.participants and self.rooms.get(room.meeting_id) is room:
            del self.rooms[room.meeting_id]
            await room.stop_recording("everyone left")

    def stats(self) -> dict[str, Any]:
        """Node load and media counters."""
        return {
            "meetings": len(self.rooms),
            "participants": sum(len(r.participants) for r in self.rooms.values()),
            "tracks": sum(len(r.tracks) for r in self.rooms.values()),
            **self.counters.snapshot(),
        }

    # -- MediaPlane: what the control plane asks ---------------------------

    async def remove_participant(self, meeting_id: str, participant_id: str, reason: str) -> bool:
        room = self.rooms.get(meeting_id)
        participant = room.participants.get(participant_id) if room else None
        if room is None or participant is None:
            return False
        await room.remove(participant, reason)
        await self.forget_if_empty(room)
        return True

    async def mute_participant(
        self, meeting_id: str, participant_id: str, kind: str, by: str = "a host"
    ) -> bool:
        room = self.rooms.get(meeting_id)
        participant = room.participants.get(participant_id) if room else None
        if participant is None:
            return False
        participant.send({"type": "moderation", "action": "mute", "kind": kind, "by": by})
        participant.set_muted(kind, True)
        return True

    async def end_meeting(self, meeting_id: str, reason: str) -> None:
        room = self.rooms.pop(meeting_id, None)
        if room is not None:
            await room.close(reason)

    async def set_permissions(
        self, meeting_id: str, participant_id: str, role: Role, permissions: Permissions
    ) -> bool:
        room = self.rooms.get(meeting_id)
        participant = room.participants.get(participant_id) if room else None
        if participant is None:
            return False
        participant.set_permissions(role, permissions)
        return True

    async def assign_rooms(
        self,
        meeting_id: str,
        rooms: dict[str, tuple[str, str] | None],
        closes_at: str | None = None,
    ) -> None:
        room = self.rooms.get(meeting_id)
        if room is not None:
            room.assign_rooms(rooms, closes_at)

    async def send(self, meeting_id: str, message: dict[str, Any], to: Audience) -> None:
        room = self.rooms.get(meeting_id)
        if room is not None:
            room.send(message, to)

    def roster(self, meeting_id: str) -> list[dict[str, Any]]:
        room = self.rooms.get(meeting_id)
        return [p.describe() for p in room.participants.values()] if room else []

    async def start_recording(
        self, meeting_id: str, recording_id: str, options: dict[str, Any]
    ) -> bool:
        room = self.rooms.get(meeting_id)
        if room is None or self.recorder is None or room.recording is not None:
            return False
        room.start_recording(self.recorder.start(meeting_id, recording_id, options))
        return True

    async def stop_recording(self, meeting_id: str) -> str | None:
        room = self.rooms.get(meeting_id)
        return await room.stop_recording() if room is not None else None

    async def close(self) -> None:
        """Tell everyone the node is going away and release their connections."""
        for room in list(self.rooms.values()):
            await room.close("server shutting down")
        self.rooms.clear()
