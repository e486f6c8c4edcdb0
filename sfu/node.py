"""The SFU node: the public face of the media plane.

It serves the signaling WebSocket and implements the contract's
``MediaPlane``: what the control plane asks of the meetings it hosts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
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
from .quality import RateMeter
from .room import Room
from .signaling import serve_signaling

logger = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 1.0
QUALITY_EVERY_TICKS = 2  # link quality every 2 s: RTCP reports come about once a second


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
        # Cluster mode: checks, before anyone joins, that this node hosts the
        # meeting (raises MeetingElsewhere); None: one node, hosts everything.
        self.admission: Callable[[str], Awaitable[None]] | None = None
        # Turns tapped tracks into files; None: this node cannot record.
        self.recorder: Recorder | None = None
        self.counters = MediaCounters()
        self.rooms: dict[str, Room] = {}
        # Sessions still ending (their handler may have been cancelled meanwhile).
        self.closing: set[asyncio.Future[None]] = set()
        self._sampler: asyncio.Task[None] | None = None
        self._forwarded = RateMeter()
        self.loop_lag_ms = 0.0

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
        if self._sampler is None:
            self._sampler = asyncio.create_task(self._sample())
        return room

    async def _sample(self) -> None:
        """Every second: event-loop lag, forwarding rate; every few: link quality."""
        loop = asyncio.get_running_loop()
        tick = 0
        while True:
            started = loop.time()
            await asyncio.sleep(SAMPLE_INTERVAL_S)
            now = loop.time()
            # How late the loop woke us: time the forwarding path was held up.
            self.loop_lag_ms = max(0.0, (now - started - SAMPLE_INTERVAL_S) * 1000)
            self._forwarded.update(self.counters.rtp_packets_forwarded, now)
            tick += 1
            if tick % QUALITY_EVERY_TICKS == 0:
                for room in self.rooms.values():
                    for participant in room.participants.values():
                        participant.sample_quality(now)

    async def forget_if_empty(self, room: Room) -> None:
        """Drop a room nobody is in any more (its recording, if any, ends)."""
        if not room.participants and self.rooms.get(room.meeting_id) is room:
            del self.rooms[room.meeting_id]
            await room.stop_recording("everyone left")

    def node_stats(self) -> dict[str, Any]:
        """Node load, media counters and mean link quality (contract: MediaPlane)."""
        samples = [
            p.quality for r in self.rooms.values() for p in r.participants.values() if p.quality
        ]

        def mean(key: str) -> float:
            return round(sum(q[key] for q in samples) / len(samples), 4) if samples else 0.0

        return {
            "meetings": len(self.rooms),
            "participants": sum(len(r.participants) for r in self.rooms.values()),
            "tracks": sum(len(r.tracks) for r in self.rooms.values()),
            "forwarded_packets_per_s": round(self._forwarded.rate, 1),
            "loop_lag_ms": round(self.loop_lag_ms, 1),
            "counters": self.counters.snapshot(),
            "quality": {
                "loss_up": mean("loss_up"),
                "loss_down": mean("loss_down"),
                "jitter_ms": mean("jitter_down_ms"),
                "rtt_ms": mean("rtt_ms"),
            },
        }

    def meeting_stats(self, meeting_id: str) -> dict[str, Any] | None:
        """A meeting's live numbers per participant (contract: MediaPlane)."""
        room = self.rooms.get(meeting_id)
        if room is None:
            return None
        participants = [
            p.quality
            or {"participant_id": p.participant_id, "name": p.name, "connection_state": "new"}
            for p in room.participants.values()
        ]
        speaking = [p for p in room.participants.values() if p.speaking]
        return {
            "meeting_id": meeting_id,
            "participants": participants,
            "engagement": {
                "participants": len(room.participants),
                "active_speakers": [p.participant_id for p in speaking],
                "speaking_s_total": round(sum(p.speaking_s for p in room.participants.values()), 2),
            },
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

    async def hand_over(self, meeting_id: str, reason: str) -> bool:
        """Send a meeting's participants to wherever the control plane places it now.

        Each gets ``reconnect`` (not ``bye``): clients rejoin on their own.
        """
        room = self.rooms.pop(meeting_id, None)
        if room is None:
            return False
        await room.hand_over(reason)
        return True

    async def close(self) -> None:
        """The node is going away: everyone is told to reconnect (a restarted
        server or another node takes them), and their connections are released."""
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None
        for meeting_id in list(self.rooms):
            await self.hand_over(meeting_id, "server shutting down")
        self.rooms.clear()
        if self.closing:
            await asyncio.wait(list(self.closing), timeout=5)
