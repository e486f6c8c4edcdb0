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
    "JoinRequest",
    "MeetingChanges",
    "MeetingDraft",
    "parse_guest_join",
    "parse_join",
    "parse_meeting_changes",
    "parse_meeting_draft",
    "read_json_object",
]

NAME_MAX = 64
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
    role: Role = "participant"


async def read_json_object(request: web.Request, max_bytes: int) -> dict[str, Any]:
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
    fields = _Fields(body, ("name", "email", "role"))
    name = _display_name(fields)
    email = fields.text("email", EMAIL_MAX)
    if email is not None and not _EMAIL.match(email):
        raise InvalidField("'email' is not an e-mail address", field="email")
    role = fields.choice("role", ROLES) or "participant"
    return JoinRequest(name=name, email=email, role=cast(Role, role))


def parse_guest_join(body: dict[str, Any]) -> JoinRequest:
    """Validate the browser's ``POST /m/{id}/join``: a name, nothing else."""
    return JoinRequest(name=_display_name(_Fields(body, ("name",))))


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
