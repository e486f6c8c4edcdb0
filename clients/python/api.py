"""The control plane's REST API, as one participant calls it with its control token.

The join response carries a ``control_token``; ``Authorization: Bearer
<control_token>`` lets its holder act as that participant over REST: read the
chat history, post to the chat and, as a host, admit or deny people waiting in
the lobby, mute, remove or promote participants and run breakout rooms. The
server decides what the participant may do; a refusal is an `ApiError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from townhall.contract import ProtocolError

from .errors import ApiError, ClientTimeout
from .messages import (
    ChatMessage,
    WaitingParticipant,
    parse_chat_message,
    parse_waiting_participant,
)

# Chat messages asked for per page of the history.
CHAT_PAGE = 100

__all__ = [
    "ApiResponse",
    "BreakoutRoom",
    "BreakoutRooms",
    "MeetingApi",
    "send_request",
]


@dataclass(frozen=True)
class ApiResponse:
    """One HTTP answer: status, the decoded JSON body (None if not JSON) and the text."""

    status: int
    body: Any
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> tuple[str | None, str, Mapping[str, Any]]:
        """The API's ``{"error": {code, message, details}}``, or (None, text, {})."""
        body = self.body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            code = error.get("code")
            details = error.get("details")
            return (
                code if isinstance(code, str) else None,
                str(error.get("message", "")),
                details if isinstance(details, dict) else {},
            )
        return None, self.text[:200], {}


async def send_request(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    body: object = None,
    bearer: str | None = None,
    params: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> ApiResponse:
    """Send one JSON request bounded by ``timeout_s``; raise ClientTimeout, aiohttp.ClientError."""
    headers = {"Accept": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        async with http.request(
            method,
            url,
            json=body,
            params=params,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            text = await response.text()
            status = response.status
    except TimeoutError as exc:
        raise ClientTimeout(f"no answer from {method} {url} within {timeout_s:g} s") from exc
    try:
        decoded: Any = json.loads(text) if text else None
    except ValueError:
        decoded = None
    return ApiResponse(status, decoded, text)


@dataclass(frozen=True)
class BreakoutRoom:
    """A breakout room and who is assigned to it."""

    id: str
    name: str
    participant_ids: tuple[str, ...]


@dataclass(frozen=True)
class BreakoutRooms:
    """The meeting's breakout rooms, and when they close if a countdown runs."""

    rooms: tuple[BreakoutRoom, ...]
    closes_at: datetime | None = None

    def by_name(self, name: str) -> BreakoutRoom:
        """The room called ``name``; KeyError if there is none."""
        for room in self.rooms:
            if room.name == name:
                return room
        raise KeyError(name)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _parse_room(value: object) -> BreakoutRoom:
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise ProtocolError("a breakout room needs a string 'id'")
    members = value.get("participants", value.get("participant_ids", []))
    ids: list[str] = []
    for member in members if isinstance(members, list) else []:
        if isinstance(member, str):
            ids.append(member)
        elif isinstance(member, dict) and isinstance(member.get("participant_id"), str):
            ids.append(member["participant_id"])
    name = value.get("name")
    return BreakoutRoom(value["id"], name if isinstance(name, str) else value["id"], tuple(ids))


def parse_breakout_rooms(body: object) -> BreakoutRooms:
    """Parse ``{rooms: [{id, name, participants}], closes_at?}``; raise ProtocolError."""
    if not isinstance(body, dict) or not isinstance(body.get("rooms"), list):
        raise ProtocolError("breakout rooms answer needs a list 'rooms'")
    return BreakoutRooms(
        rooms=tuple(_parse_room(r) for r in body["rooms"]),
        closes_at=_parse_time(body.get("closes_at")),
    )


class MeetingApi:
    """REST calls about one meeting, authorized by a participant's control token."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        meeting_id: str,
        bearer: str,
        *,
        timeout_s: float = 10.0,
    ) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self.meeting_id = meeting_id
        self._bearer = bearer
        self.timeout_s = timeout_s

    def url(self, path: str = "") -> str:
        """The absolute URL of ``path`` under ``/api/v1/meetings/{id}``."""
        return f"{self.base_url}/api/v1/meetings/{quote(self.meeting_id, safe='')}{path}"

    async def call(
        self,
        method: str,
        path: str = "",
        body: object = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Call ``path`` under the meeting; the decoded JSON body; ApiError unless 2xx."""
        url = self.url(path)
        try:
            response = await send_request(
                self._http,
                method,
                url,
                body=body,
                bearer=self._bearer,
                params=params,
                timeout_s=self.timeout_s,
            )
        except aiohttp.ClientError as exc:
            raise ApiError(f"could not reach {url}: {exc}", status=0) from exc
        if not response.ok:
            code, message, details = response.error()
            raise ApiError(
                f"{method} {url} answered HTTP {response.status}"
                + (f" ({code})" if code else "")
                + f": {message}",
                status=response.status,
                code=code,
                details=details,
            )
        return response.body

    # -- chat ----------------------------------------------------------------

    async def chat_history(self, max_pages: int = 100) -> list[ChatMessage]:
        """The messages this participant may read, oldest first, following every page."""
        messages: list[ChatMessage] = []
        cursor: str | None = None
        for _page in range(max_pages):
            params = {"limit": str(CHAT_PAGE)}
            if cursor is not None:
                params["cursor"] = cursor
            body = await self.call("GET", "/chat", params=params)
            items = body.get("messages") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise ApiError("chat history is not a list of messages", status=200)
            try:
                messages.extend(parse_chat_message(item) for item in items)
            except ProtocolError as exc:
                raise ApiError(f"chat history: {exc}", status=200) from exc
            cursor = body.get("next_cursor")
            if not isinstance(cursor, str) or not cursor:
                return messages
        raise ApiError(f"chat history has more than {max_pages} pages", status=200)

    async def post_chat(self, text: str, to: str | None = None) -> ChatMessage | None:
        """Post a chat message over REST; the stored message when the server returns it."""
        payload: dict[str, Any] = {"text": text}
        if to is not None:
            payload["to"] = to
        body = await self.call("POST", "/chat", payload)
        item = body.get("message", body) if isinstance(body, dict) else None
        try:
            return parse_chat_message(item) if isinstance(item, dict) else None
        except ProtocolError:
            return None

    # -- lobby and policy (hosts) ------------------------------------------------

    async def lobby(self) -> list[WaitingParticipant]:
        """Who waits in the lobby now."""
        body = await self.call("GET", "/lobby")
        items = body.get("waiting") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ApiError("lobby answer has no list 'waiting'", status=200)
        try:
            return [parse_waiting_participant(item) for item in items]
        except ProtocolError as exc:
            raise ApiError(f"lobby: {exc}", status=200) from exc

    async def policy(self) -> dict[str, Any]:
        """The meeting's access policy."""
        body = await self.call("GET", "/policy")
        if not isinstance(body, dict):
            raise ApiError("policy is not an object", status=200)
        return body

    async def update_policy(self, **changes: Any) -> dict[str, Any]:
        """Change some policy keys (``require_waiting_room=True``, ...); the new policy."""
        body = await self.call("PATCH", "/policy", changes)
        if not isinstance(body, dict):
            raise ApiError("policy is not an object", status=200)
        return body

    async def participants(self) -> list[dict[str, Any]]:
        """Everyone the control plane knows in this meeting, with their status."""
        body = await self.call("GET", "/participants")
        items = body.get("participants") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ApiError("participants answer has no list 'participants'", status=200)
        return items

    async def admit(self, participant_id: str) -> Any:
        """Let a participant waiting in the lobby in (host)."""
        return await self.call("POST", f"/lobby/{quote(participant_id, safe='')}/admit", {})

    async def deny(self, participant_id: str, reason: str | None = None) -> Any:
        """Turn a participant waiting in the lobby away (host)."""
        body = {} if reason is None else {"reason": reason}
        return await self.call("POST", f"/lobby/{quote(participant_id, safe='')}/deny", body)

    # -- moderation --------------------------------------------------------------

    async def mute(self, participant_id: str, kind: Literal["audio", "video"] = "audio") -> Any:
        """Mute someone's audio or video (host); they are told with ``moderation``."""
        return await self._moderate(participant_id, "mute", {"kind": kind})

    async def remove(
        self, participant_id: str, *, reason: str | None = None, block: bool = False
    ) -> Any:
        """Remove someone from the meeting (host); ``block`` keeps them out for good."""
        body: dict[str, Any] = {}
        if reason is not None:
            body["reason"] = reason
        if block:
            body["block"] = True
        return await self._moderate(participant_id, "remove", body)

    async def promote(
        self, participant_id: str, role: Literal["host", "participant", "viewer"] = "host"
    ) -> Any:
        """Give someone another role, a host by default (host)."""
        return await self._moderate(participant_id, "promote", {"role": role})

    async def _moderate(self, participant_id: str, action: str, body: dict[str, Any]) -> Any:
        return await self.call(
            "POST", f"/participants/{quote(participant_id, safe='')}/{action}", body
        )

    # -- breakout rooms ------------------------------------------------------------

    async def create_breakout_rooms(
        self,
        assignments: Mapping[str, Sequence[str]] | None = None,
        *,
        count: int | None = None,
        duration_s: int | None = None,
    ) -> BreakoutRooms:
        """Open rooms: ``{room name: [participant ids]}``, or ``count`` rooms filled round-robin.

        The API takes room names and ``assignments`` (participant id -> room
        index); ``duration_s`` closes the rooms on their own after that long.
        """
        if (assignments is None) == (count is None):
            raise ValueError("give either assignments or a count of rooms")
        body: dict[str, Any]
        if assignments is not None:
            body = {
                "rooms": [{"name": name} for name in assignments],
                "assignments": {
                    participant_id: index
                    for index, members in enumerate(assignments.values())
                    for participant_id in members
                },
            }
        else:
            body = {"count": count, "auto_assign": True}
        if duration_s is not None:
            body["duration_s"] = duration_s
        return self._rooms(await self.call("POST", "/breakout-rooms", body))

    async def breakout_rooms(self) -> BreakoutRooms:
        """The breakout rooms open now."""
        return self._rooms(await self.call("GET", "/breakout-rooms"))

    async def move_to_room(self, participant_id: str, room_id: str | None) -> Any:
        """Move one participant to a room, or back to the main meeting (None)."""
        return await self.call(
            "POST", "/breakout-rooms/move", {"participant_id": participant_id, "room_id": room_id}
        )

    async def close_breakout_rooms(self, countdown_s: int = 0) -> Any:
        """Close every room, now or after ``countdown_s`` seconds; everyone returns."""
        return await self.call(
            "DELETE", "/breakout-rooms", params={"countdown_s": str(countdown_s)}
        )

    @staticmethod
    def _rooms(body: object) -> BreakoutRooms:
        try:
            return parse_breakout_rooms(body)
        except ProtocolError as exc:
            raise ApiError(f"breakout rooms: {exc}", status=200) from exc
