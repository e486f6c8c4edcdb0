"""The REST API of what participants do together: chat and breakout rooms."""

from __future__ import annotations

from aiohttp import web

from townhall.contract import MAX_CHAT_CHARS

from .auth import Guard
from .bodies import (
    BREAKOUT_COUNTDOWN_MAX,
    parse_breakout_move,
    parse_breakout_plan,
    parse_chat_post,
    read_json_object,
)
from .breakout import Breakouts
from .chat import Chat
from .params import allow_only, integer_parameter, page_parameters

__all__ = ["CollaborationApi"]

MEETING = "/api/v1/meetings/{meeting_id}"


class CollaborationApi:
    """HTTP handlers for chat and breakout rooms."""

    def __init__(
        self, chat: Chat, breakouts: Breakouts, guard: Guard, *, max_body_bytes: int
    ) -> None:
        self._chat = chat
        self._breakouts = breakouts
        self._guard = guard
        self._max_body_bytes = max_body_bytes

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{MEETING}/chat", self.post_chat),
            web.get(f"{MEETING}/chat", self.read_chat),
            web.post(f"{MEETING}/breakout-rooms", self.open_rooms),
            web.get(f"{MEETING}/breakout-rooms", self.rooms),
            web.post(f"{MEETING}/breakout-rooms/move", self.move),
            web.delete(f"{MEETING}/breakout-rooms", self.close_rooms),
        ]

    async def post_chat(self, request: web.Request) -> web.Response:
        """A participant's message (the sender), or the admin's (sender ``system``)."""
        meeting_id = request.match_info["meeting_id"]
        caller = await self._guard.require_participant(request, meeting_id)
        post = parse_chat_post(
            await read_json_object(request, self._max_body_bytes), MAX_CHAT_CHARS
        )
        message = await self._chat.post(meeting_id, caller.participant, post.text, post.to)
        await self._chat.deliver(message)
        return web.json_response(message.to_json(), status=201)

    async def read_chat(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        caller = await self._guard.require_participant(request, meeting_id)
        limit, cursor = page_parameters(request, default=50)
        page = await self._chat.page(meeting_id, caller.participant, limit, cursor)
        return web.json_response(
            {
                "messages": [m.to_json() for m in page.messages],
                "next_cursor": page.next_cursor,
            }
        )

    async def open_rooms(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        caller = await self._guard.require_host(request, meeting_id)
        plan = parse_breakout_plan(await read_json_object(request, self._max_body_bytes))
        breakout = await self._breakouts.open(meeting_id, plan, caller)
        return web.json_response(breakout.to_json(), status=201)

    async def rooms(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        await self._guard.require_participant(request, meeting_id)
        return web.json_response((await self._breakouts.current(meeting_id)).to_json())

    async def move(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        caller = await self._guard.require_host(request, meeting_id)
        participant_id, room_id = parse_breakout_move(
            await read_json_object(request, self._max_body_bytes)
        )
        breakout = await self._breakouts.move(meeting_id, participant_id, room_id, caller)
        return web.json_response(breakout.to_json())

    async def close_rooms(self, request: web.Request) -> web.Response:
        """Everyone back to the main meeting, after ``countdown_s`` seconds (0: now)."""
        meeting_id = request.match_info["meeting_id"]
        caller = await self._guard.require_host(request, meeting_id)
        allow_only(request, ("countdown_s",))
        countdown_s = integer_parameter(request, "countdown_s", 0, 0, BREAKOUT_COUNTDOWN_MAX)
        breakout = await self._breakouts.close(meeting_id, countdown_s, caller)
        return web.json_response(breakout.to_json())
