"""The SFU node: the public face of the media plane."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from townhall.contract import SIGNALING_PATH

from .aiortc_bridge import check_internals
from .config import SfuConfig
from .metrics import MediaCounters
from .room import Room
from .signaling import serve_signaling


class SfuNode:
    """Hosts meetings' rooms and serves the signaling WebSocket at ``SIGNALING_PATH``."""

    def __init__(self, config: SfuConfig, token_secret: str) -> None:
        check_internals()
        self.config = config
        self.token_secret = token_secret
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
            room = self.rooms[meeting_id] = Room(meeting_id, self.config, self.counters)
        return room

    def forget_if_empty(self, room: Room) -> None:
        if not room.participants and self.rooms.get(room.meeting_id) is room:
            del self.rooms[room.meeting_id]

    def stats(self) -> dict[str, Any]:
        """Node load and media counters."""
        return {
            "meetings": len(self.rooms),
            "participants": sum(len(r.participants) for r in self.rooms.values()),
            "tracks": sum(len(r.tracks) for r in self.rooms.values()),
            **self.counters.snapshot(),
        }

    async def close(self) -> None:
        """Tell everyone the node is going away and release their connections."""
        for room in list(self.rooms.values()):
            await room.close("server shutting down")
        self.rooms.clear()
