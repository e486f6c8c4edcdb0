"""Request bodies: read, bounded, parsed and validated into typed values at the edge.

Handlers get a :class:`MeetingDraft`, a :class:`MeetingChanges` or a
:class:`JoinRequest`, never a raw dict. A body that is not a JSON object, has
a field of the wrong type or a field nobody asked for raises one of the
:mod:`control.errors` ``BadRequest`` errors, naming the field.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

from townhall.contract import ROLES, Role

from .errors import InvalidField, InvalidJson, PayloadTooLarge, UnknownField
from .store import MEETING_STATUSES, MeetingStatus

__all__ = [
    "AccessQuery",
    "BreakoutPlan",
    "ChatPost",
    "InviteRequest",
    "JoinRequest",
    "MeetingChanges",
    "MeetingDraft",
    "Removal",
    "parse_access_query",
    "parse_breakout_move",
    "parse_breakout_plan",
    "parse_chat_post",
    "parse_denial",
    "parse_drain",
    "parse_guest_join",
    "parse_invite",
    "parse_join",
    "parse_meeting_changes",
    "parse_meeting_draft",
    "parse_mute",
    "parse_promotion",
    "parse_removal",
    "read_json_object",
    "read_optional_json_object",
]

NAME_MAX = 64
REASON_MAX = 500
INVITE_MAX = 4096
ROOM_NAME_MAX = 64
MAX_ROOMS = 50
MAX_DURATION_S = 24 * 3600
BREAKOUT_COUNTDOWN_MAX = 3600
MAX_INVITE_TTL_S = 90 * 24 * 3600
DEFAULT_INVITE_TTL_S = 7 * 24 * 3600
MAX_INVITE_USES = 100_000
TITLE_MAX = 200
DESCRIPTION_MAX = 4000
IDENTITY_MAX = 256
EMAIL_MAX = 254
# Deliberately loose (RFC 5322 is not a regex): one @, no spaces, a dot in the domain.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Control characters in a display name would reach other people's screens.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class MeetingDraft:
    """A meeting to create."""

    title: str
    description: str = ""
    scheduled_start: datetime.datetime | None = None
    host_identity: str | None = None


@dataclass(frozen=True)
class MeetingChanges:
    """The fields a PATCH sets; absent fields keep their value."""

    title: str | None = None
    description: str | None = None
    scheduled_start: datetime.datetime | None = None
    clear_scheduled_start: bool = False
    host_identity: str | None = None
    clear_host_identity: bool = False
    status: MeetingStatus | None = None


@dataclass(frozen=True)
class JoinRequest:
    """Who wants in, as asserted by the API caller (or a guest's chosen name)."""

    name: str
    email: str | None = None
    # None: not asked for; the invite's role, or ``participant``.
    role: Role | None = None
    invite: str | None = None


@dataclass(frozen=True)
class AccessQuery:
    """``validate-access``: would this person get in? (nothing is written)"""

    name: str
    email: str | None = None
    role: Role | None = None
    identity: str | None = None
    invite: str | None = None


@dataclass(frozen=True)
class InviteRequest:
    """An invite to mint: bound to an e-mail address and/or granting a role."""

    email: str | None
    role: Role | None
    expires_in_s: int
    max_uses: int | None


@dataclass(frozen=True)
class Removal:
    """``remove``: why, and whether to block the person from coming back."""

    block: bool
    reason: str | None


@dataclass(frozen=True)
class ChatPost:
    text: str
    to: str | None


@dataclass(frozen=True)
class BreakoutPlan:
    """Rooms to open and who goes where (room indexes into ``names``)."""

    names: tuple[str, ...]
    assignments: dict[str, int]
    auto_assign: bool
    duration_s: int | None


async def read_optional_json_object(request: web.Request, max_bytes: int) -> dict[str, Any]:
    """Like :func:`read_json_object`, but an empty body is an empty object."""
    if request.content_length == 0 or not request.can_read_body:
        return {}
    return await read_json_object(request, max_bytes, allow_empty=True)


async def read_json_object(
    request: web.Request, max_bytes: int, *, allow_empty: bool = False
) -> dict[str, Any]:
    """The request body as a JSON object, at most ``max_bytes`` long."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"body is larger than {max_bytes} bytes", max_bytes=max_bytes)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        # A chunked body has no Content-Length; aiohttp stops it at client_max_size.
        raise PayloadTooLarge(
            f"body is larger than {max_bytes} bytes", max_bytes=max_bytes
        ) from exc
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"body is larger than {max_bytes} bytes", max_bytes=max_bytes)
    if not raw.strip():
        if allow_empty:
            return {}
        raise InvalidJson("request body is empty; expected a JSON object")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:
        raise InvalidJson(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidJson("request body must be a JSON object")
    return body


def parse_meeting_draft(body: dict[str, Any]) -> MeetingDraft:
    """Validate ``POST /api/v1/meetings``."""
    fields = _Fields(body, ("title", "description", "scheduled_start", "host_identity"))
    return MeetingDraft(
        title=fields.text("title", TITLE_MAX, required=True) or "",
        description=fields.text("description", DESCRIPTION_MAX, allow_empty=True) or "",
        scheduled_start=fields.moment("scheduled_start"),
        host_identity=fields.text("host_identity", IDENTITY_MAX),
    )


def parse_meeting_changes(body: dict[str, Any]) -> MeetingChanges:
    """Validate ``PATCH /api/v1/meetings/{id}``; ``null`` clears an optional field."""
    fields = _Fields(body, ("title", "description", "scheduled_start", "host_identity", "status"))
    status = fields.choice("status", MEETING_STATUSES)
    return MeetingChanges(
        title=fields.text("title", TITLE_MAX),
        description=fields.text("description", DESCRIPTION_MAX, allow_empty=True),
        scheduled_start=fields.moment("scheduled_start"),
        clear_scheduled_start=fields.is_null("scheduled_start"),
        host_identity=fields.text("host_identity", IDENTITY_MAX),
        clear_host_identity=fields.is_null("host_identity"),
        status=cast(MeetingStatus | None, status),
    )


def parse_join(body: dict[str, Any]) -> JoinRequest:
    """Validate ``POST /api/v1/meetings/{id}/join``."""
    fields = _Fields(body, ("name", "email", "role", "invite"))
    return JoinRequest(
        name=_display_name(fields),
        email=_email(fields),
        role=cast(Role | None, fields.choice("role", ROLES)),
        invite=fields.text("invite", INVITE_MAX),
    )


def parse_guest_join(body: dict[str, Any]) -> JoinRequest:
    """Validate the browser's ``POST /m/{id}/join``: a name, and an invite if there is one."""
    fields = _Fields(body, ("name", "invite"))
    return JoinRequest(name=_display_name(fields), invite=fields.text("invite", INVITE_MAX))


def parse_access_query(body: dict[str, Any]) -> AccessQuery:
    """Validate ``POST /api/v1/meetings/{id}/validate-access``."""
    fields = _Fields(body, ("name", "email", "role", "identity", "invite"))
    name = fields.text("name", NAME_MAX) or "someone"
    return AccessQuery(
        name=name,
        email=_email(fields),
        role=cast(Role | None, fields.choice("role", ROLES)),
        identity=fields.text("identity", IDENTITY_MAX),
        invite=fields.text("invite", INVITE_MAX),
    )


def parse_invite(body: dict[str, Any]) -> InviteRequest:
    """Validate ``POST /api/v1/meetings/{id}/invites``."""
    fields = _Fields(body, ("email", "role", "expires_in_s", "max_uses"))
    expires_in_s = fields.integer("expires_in_s", 1, MAX_INVITE_TTL_S)
    return InviteRequest(
        email=_email(fields),
        role=cast(Role | None, fields.choice("role", ROLES)),
        expires_in_s=DEFAULT_INVITE_TTL_S if expires_in_s is None else expires_in_s,
        max_uses=fields.integer("max_uses", 1, MAX_INVITE_USES),
    )


def parse_denial(body: dict[str, Any]) -> str | None:
    """Validate ``POST .../lobby/{pid}/deny``: an optional reason."""
    return _Fields(body, ("reason",)).text("reason", REASON_MAX)


def parse_mute(body: dict[str, Any]) -> str:
    """Validate ``POST .../participants/{pid}/mute``: which kind of media."""
    kind = _Fields(body, ("kind",)).choice("kind", ("audio", "video"))
    if kind is None:
        raise InvalidField("'kind' is required: audio or video", field="kind")
    return kind


def parse_removal(body: dict[str, Any]) -> Removal:
    """Validate ``POST .../participants/{pid}/remove``."""
    fields = _Fields(body, ("block", "reason"))
    return Removal(block=fields.boolean("block", False), reason=fields.text("reason", REASON_MAX))


def parse_drain(body: dict[str, Any]) -> bool:
    """Validate ``POST /api/v1/nodes/{id}/drain``: whether to migrate now."""
    return _Fields(body, ("migrate",)).boolean("migrate", False)


def parse_promotion(body: dict[str, Any]) -> Role:
    """Validate ``POST .../participants/{pid}/promote``: the new role."""
    role = _Fields(body, ("role",)).choice("role", ROLES)
    if role is None:
        raise InvalidField(f"'role' is required: one of {', '.join(ROLES)}", field="role")
    return cast(Role, role)


def parse_chat_post(body: dict[str, Any], max_chars: int) -> ChatPost:
    """Validate ``POST /api/v1/meetings/{id}/chat``: 1 to ``max_chars`` characters."""
    fields = _Fields(body, ("text", "to"))
    value = body.get("text")
    if not isinstance(value, str) or not value.strip():
        raise InvalidField("'text' must be a non-empty string", field="text")
    if len(value) > max_chars:
        raise InvalidField(
            f"'text' must be at most {max_chars} characters", field="text", max_length=max_chars
        )
    return ChatPost(text=value, to=fields.text("to", IDENTITY_MAX))


def parse_breakout_plan(body: dict[str, Any]) -> BreakoutPlan:
    """Validate ``POST /api/v1/meetings/{id}/breakout-rooms``."""
    fields = _Fields(body, ("count", "rooms", "assignments", "auto_assign", "duration_s"))
    count = fields.integer("count", 1, MAX_ROOMS)
    names = _room_names(body.get("rooms"))
    if names is None:
        if count is None:
            raise InvalidField("give 'count' or 'rooms'", field="count")
        names = tuple(f"Room {index + 1}" for index in range(count))
    elif count is not None and count != len(names):
        raise InvalidField("'count' does not match the number of 'rooms'", field="count")
    assignments = body.get("assignments") or {}
    if not isinstance(assignments, dict):
        raise InvalidField(
            "'assignments' must map participant ids to room indexes", field="assignments"
        )
    for participant_id, index in assignments.items():
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(names):
            raise InvalidField(
                f"'assignments.{participant_id}' must be a room index from 0 to {len(names) - 1}",
                field="assignments",
                participant_id=participant_id,
            )
    return BreakoutPlan(
        names=names,
        assignments=dict(assignments),
        auto_assign=fields.boolean("auto_assign", False),
        duration_s=fields.integer("duration_s", 1, MAX_DURATION_S),
    )


def parse_breakout_move(body: dict[str, Any]) -> tuple[str, str | None]:
    """Validate ``POST .../breakout-rooms/move``: who, and to which room (null: main)."""
    fields = _Fields(body, ("participant_id", "room_id"))
    participant_id = fields.text("participant_id", IDENTITY_MAX, required=True) or ""
    if "room_id" not in body:
        raise InvalidField("'room_id' is required (null: the main meeting)", field="room_id")
    return participant_id, fields.text("room_id", IDENTITY_MAX)


def _room_names(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_ROOMS:
        raise InvalidField(f"'rooms' must be a list of 1 to {MAX_ROOMS} rooms", field="rooms")
    names = []
    for index, room in enumerate(value):
        if not isinstance(room, dict) or set(room) - {"name"}:
            raise InvalidField(f"'rooms[{index}]' must be an object {{name}}", field="rooms")
        name = room.get("name", f"Room {index + 1}")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > ROOM_NAME_MAX:
            raise InvalidField(
                f"'rooms[{index}].name' must be 1 to {ROOM_NAME_MAX} characters", field="rooms"
            )
        if _CONTROL.search(name):
            raise InvalidField(f"'rooms[{index}].name' has control characters", field="rooms")
        names.append(name.strip())
    return tuple(names)


def _email(fields: _Fields) -> str | None:
    email = fields.text("email", EMAIL_MAX)
    if email is not None and not _EMAIL.match(email):
        raise InvalidField("'email' is not an e-mail address", field="email")
    return email


def _display_name(fields: _Fields) -> str:
    name = fields.text("name", NAME_MAX, required=True) or ""
    if _CONTROL.search(name):
        raise InvalidField("'name' must not contain control characters", field="name")
    return name


class _Fields:
    """Typed access to a body's fields; unknown fields are refused up front."""

    def __init__(self, body: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for name in body:
            if name not in allowed:
                raise UnknownField(f"unknown field '{name}'", field=name, allowed=sorted(allowed))
        self._body = body

    def is_null(self, name: str) -> bool:
        return name in self._body and self._body[name] is None

    def text(
        self, name: str, max_length: int, *, required: bool = False, allow_empty: bool = False
    ) -> str | None:
        """A string field, trimmed; None when absent or null (unless required)."""
        value = self._body.get(name)
        if value is None:
            if required:
                raise InvalidField(f"'{name}' is required", field=name)
            return None
        if not isinstance(value, str):
            raise InvalidField(f"'{name}' must be a string", field=name)
        value = value.strip()
        if not value and not allow_empty:
            raise InvalidField(f"'{name}' must not be empty", field=name)
        if len(value) > max_length:
            raise InvalidField(
                f"'{name}' must be at most {max_length} characters",
                field=name,
                max_length=max_length,
            )
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._body.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InvalidField(f"'{name}' must be true or false", field=name)
        return value

    def integer(self, name: str, minimum: int, maximum: int) -> int | None:
        value = self._body.get(name)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            raise InvalidField(
                f"'{name}' must be an integer from {minimum} to {maximum}", field=name
            )
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        value = self._body.get(name)
        if value is None:
            return None
        if value not in choices:
            raise InvalidField(
                f"'{name}' must be one of {', '.join(choices)}", field=name, allowed=list(choices)
            )
        return str(value)

    def moment(self, name: str) -> datetime.datetime | None:
        """An RFC 3339 timestamp with an offset, e.g. ``2030-01-31T09:00:00Z``."""
        value = self.text(name, 64)
        if value is None:
            return None
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidField(f"'{name}' is not an ISO 8601 timestamp", field=name) from exc
        if moment.tzinfo is None:
            raise InvalidField(f"'{name}' needs a UTC offset (e.g. 'Z')", field=name)
        return moment.astimezone(datetime.UTC)


def _reject_constant(token: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (RFC 8259) does not.
    raise ValueError(f"{token} is not valid JSON")
