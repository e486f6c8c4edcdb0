"""The REST API under ``/api/v1`` and the browser's guest join, JSON in and out.

Handlers parse at the edge (:mod:`control.bodies`), call the domain
(:mod:`control.meetings`, :mod:`control.admission`) and render JSON; errors
are raised and turned into responses by :mod:`control.app`'s middleware.
"""

from __future__ import annotations

import datetime
from typing import Any

from aiohttp import web

from .admission import Admission, JoinGrant
from .auth import ApiKeyGuard
from .bodies import (
    parse_guest_join,
    parse_join,
    parse_meeting_changes,
    parse_meeting_draft,
    read_json_object,
)
from .errors import InvalidParameter
from .meetings import MAX_PAGE_SIZE, Meetings
from .store import Meeting

__all__ = ["DEFAULT_PAGE_SIZE", "MeetingsApi", "render_meeting"]

DEFAULT_PAGE_SIZE = 20


class MeetingsApi:
    """HTTP handlers for meetings and joins."""

    def __init__(
        self,
        meetings: Meetings,
        admission: Admission,
        guard: ApiKeyGuard,
        *,
        public_url: str,
        max_body_bytes: int,
    ) -> None:
        self._meetings = meetings
        self._admission = admission
        self._guard = guard
        self._public_url = public_url
        self._max_body_bytes = max_body_bytes

    def routes(self) -> list[web.RouteDef]:
        """The routes this API serves."""
        meeting = "/api/v1/meetings/{meeting_id}"
        return [
            web.post("/api/v1/meetings", self.create_meeting),
            web.get("/api/v1/meetings", self.list_meetings),
            web.get(meeting, self.get_meeting),
            web.patch(meeting, self.update_meeting),
            web.delete(meeting, self.delete_meeting),
            web.post(f"{meeting}/join", self.join),
            web.post("/m/{meeting_id}/join", self.guest_join),
        ]

    async def create_meeting(self, request: web.Request) -> web.Response:
        self._guard.require(request)
        draft = parse_meeting_draft(await read_json_object(request, self._max_body_bytes))
        meeting = await self._meetings.create(draft)
        return web.json_response(
            render_meeting(meeting, self._public_url),
            status=201,
            headers={"Location": f"/api/v1/meetings/{meeting.id}"},
        )

    async def list_meetings(self, request: web.Request) -> web.Response:
        self._guard.require(request)
        limit, cursor = _page_parameters(request)
        page = await self._meetings.page(limit, cursor)
        return web.json_response(
            {
                "meetings": [render_meeting(m, self._public_url) for m in page.meetings],
                "next_cursor": page.next_cursor,
            }
        )

    async def get_meeting(self, request: web.Request) -> web.Response:
        self._guard.require(request)
        meeting = await self._meetings.get(request.match_info["meeting_id"])
        return web.json_response(render_meeting(meeting, self._public_url))

    async def update_meeting(self, request: web.Request) -> web.Response:
        self._guard.require(request)
        changes = parse_meeting_changes(await read_json_object(request, self._max_body_bytes))
        meeting = await self._meetings.update(request.match_info["meeting_id"], changes)
        return web.json_response(render_meeting(meeting, self._public_url))

    async def delete_meeting(self, request: web.Request) -> web.Response:
        self._guard.require(request)
        await self._meetings.delete(request.match_info["meeting_id"])
        return web.Response(status=204)

    async def join(self, request: web.Request) -> web.Response:
        """An integrator vouches for a user (name, e-mail, role)."""
        self._guard.require(request)
        join = parse_join(await read_json_object(request, self._max_body_bytes))
        grant = await self._admission.join(request.match_info["meeting_id"], join, guest=False)
        return web.json_response(_render_grant(grant))

    async def guest_join(self, request: web.Request) -> web.Response:
        """Someone on the join page, with only a name: an anonymous participant."""
        join = parse_guest_join(await read_json_object(request, self._max_body_bytes))
        grant = await self._admission.join(request.match_info["meeting_id"], join, guest=True)
        return web.json_response(_render_grant(grant))


def render_meeting(meeting: Meeting, public_url: str) -> dict[str, Any]:
    """The API's JSON form of a meeting."""
    return {
        "id": meeting.id,
        "title": meeting.title,
        "description": meeting.description,
        "host_identity": meeting.host_identity,
        "scheduled_start": _rfc3339(meeting.scheduled_start),
        "status": meeting.status,
        "join_url": f"{public_url}/m/{meeting.id}",
        "created_at": _rfc3339(meeting.created_at),
        "updated_at": _rfc3339(meeting.updated_at),
    }


def _render_grant(grant: JoinGrant) -> dict[str, Any]:
    participant = grant.participant
    return {
        "participant_id": participant.id,
        "meeting_id": participant.meeting_id,
        "meeting_title": grant.meeting_title,
        "name": participant.name,
        "role": participant.role,
        "token": grant.token,
        "signaling_url": grant.signaling_url,
        "ice_servers": list(grant.ice_servers),
        "status": "joined",
    }


def _page_parameters(request: web.Request) -> tuple[int, str | None]:
    for name in request.query:
        if name not in ("limit", "cursor"):
            raise InvalidParameter(f"unknown query parameter '{name}'", parameter=name)
    text = request.query.get("limit", str(DEFAULT_PAGE_SIZE))
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise InvalidParameter(
            f"'limit' must be an integer from 1 to {MAX_PAGE_SIZE}", parameter="limit"
        )
    cursor = request.query.get("cursor") or None
    return int(text), cursor


def _rfc3339(moment: datetime.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
