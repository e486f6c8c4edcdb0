"""The REST API of a running meeting's hosts: policy, lobby, participants and moderation.

Also the waiter's side of the lobby: a waiting participant polls their own
standing with their control token.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .auth import Guard
from .bodies import (
    parse_denial,
    parse_mute,
    parse_promotion,
    parse_removal,
    read_json_object,
    read_optional_json_object,
)
from .lobby import MAX_WAIT_S, Lobby, render_waiter
from .moderation import Moderation
from .params import allow_only, integer_parameter

__all__ = ["ModerationApi"]

MEETING = "/api/v1/meetings/{meeting_id}"
WAITER = f"{MEETING}/lobby/{{participant_id}}"
PARTICIPANT = f"{MEETING}/participants/{{participant_id}}"


class ModerationApi:
    """HTTP handlers for policy, lobby and moderation."""

    def __init__(
        self, moderation: Moderation, lobby: Lobby, guard: Guard, *, max_body_bytes: int
    ) -> None:
        self._moderation = moderation
        self._lobby = lobby
        self._guard = guard
        self._max_body_bytes = max_body_bytes

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{MEETING}/policy", self.get_policy),
            web.put(f"{MEETING}/policy", self.replace_policy),
            web.patch(f"{MEETING}/policy", self.update_policy),
            web.get(f"{MEETING}/lobby", self.lobby),
            web.get(WAITER, self.poll),
            web.delete(WAITER, self.leave_lobby),
            web.post(f"{WAITER}/admit", self.admit),
            web.post(f"{WAITER}/deny", self.deny),
            web.get(f"{MEETING}/participants", self.participants),
            web.post(f"{PARTICIPANT}/mute", self.mute),
            web.post(f"{PARTICIPANT}/remove", self.remove),
            web.post(f"{PARTICIPANT}/promote", self.promote),
        ]

    async def get_policy(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        await self._guard.require_host(request, meeting_id)
        policy = await self._moderation.policy(meeting_id)
        return web.json_response(policy.to_json())

    async def replace_policy(self, request: web.Request) -> web.Response:
        return await self._change_policy(request, partial=False)

    async def update_policy(self, request: web.Request) -> web.Response:
        return await self._change_policy(request, partial=True)

    async def lobby(self, request: web.Request) -> web.Response:
        """Who waits (hosts)."""
        meeting_id = request.match_info["meeting_id"]
        await self._guard.require_host(request, meeting_id)
        waiting = await self._lobby.waiting(meeting_id)
        return web.json_response({"waiting": [render_waiter(p) for p in waiting]})

    async def poll(self, request: web.Request) -> web.Response:
        """A waiter's standing, long-polled (``wait`` seconds at most)."""
        meeting_id, participant_id = _ids(request)
        await self._guard.require_self_or_host(request, meeting_id, participant_id)
        allow_only(request, ("wait",))
        wait_s = integer_parameter(request, "wait", 0, 0, int(MAX_WAIT_S))
        return web.json_response(await self._lobby.poll(meeting_id, participant_id, wait_s))

    async def leave_lobby(self, request: web.Request) -> web.Response:
        meeting_id, participant_id = _ids(request)
        caller = await self._guard.require_self_or_host(request, meeting_id, participant_id)
        await self._lobby.leave(meeting_id, participant_id, caller)
        return web.Response(status=204)

    async def admit(self, request: web.Request) -> web.Response:
        meeting_id, participant_id = _ids(request)
        caller = await self._guard.require_host(request, meeting_id)
        participant = await self._lobby.admit(meeting_id, participant_id, caller)
        return web.json_response(self._moderation.describe(participant))

    async def deny(self, request: web.Request) -> web.Response:
        meeting_id, participant_id = _ids(request)
        caller = await self._guard.require_host(request, meeting_id)
        reason = parse_denial(await read_optional_json_object(request, self._max_body_bytes))
        participant = await self._lobby.deny(meeting_id, participant_id, caller, reason)
        return web.json_response(self._moderation.describe(participant))

    async def participants(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        await self._guard.require_host(request, meeting_id)
        return web.json_response({"participants": await self._moderation.participants(meeting_id)})

    async def mute(self, request: web.Request) -> web.Response:
        meeting_id, participant_id = _ids(request)
        caller = await self._guard.require_host(request, meeting_id)
        kind = parse_mute(await read_json_object(request, self._max_body_bytes))
        await self._moderation.mute(meeting_id, participant_id, kind, caller)
        return web.json_response({"participant_id": participant_id, "kind": kind, "muted": True})

    async def remove(self, request: web.Request) -> web.Response:
        meeting_id, participant_id = _ids(request)
        caller = await self._guard.require_host(request, meeting_id)
        removal = parse_removal(await read_optional_json_object(request, self._max_body_bytes))
        participant = await self._moderation.remove(meeting_id, participant_id, removal, caller)
        return web.json_response(self._moderation.describe(participant))

    async def promote(self, request: web.Request) -> web.Response:
        meeting_id, participant_id = _ids(request)
        caller = await self._guard.require_host(request, meeting_id)
        role = parse_promotion(await read_json_object(request, self._max_body_bytes))
        participant = await self._moderation.promote(meeting_id, participant_id, role, caller)
        return web.json_response(self._moderation.describe(participant))

    async def _change_policy(self, request: web.Request, *, partial: bool) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        caller = await self._guard.require_host(request, meeting_id)
        body: dict[str, Any] = await read_json_object(request, self._max_body_bytes)
        policy = await self._moderation.change_policy(
            meeting_id, body, partial=partial, caller=caller
        )
        return web.json_response(policy.to_json())


def _ids(request: web.Request) -> tuple[str, str]:
    return request.match_info["meeting_id"], request.match_info["participant_id"]
