"""Meetings: create, read, page through, change and delete them.

Status moves forward only: ``scheduled`` -> ``live`` -> ``ended`` (a meeting
may also end without having been live). An ended meeting stays ended.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
from collections.abc import Callable

from .bodies import MeetingChanges, MeetingDraft
from .errors import InvalidParameter, InvalidTransition, MeetingNotFound
from .store import Meeting, MeetingStatus, Store, new_id

__all__ = ["MAX_PAGE_SIZE", "Meetings", "MeetingsPage"]

MAX_PAGE_SIZE = 100
_STATUS_ORDER: dict[MeetingStatus, int] = {"scheduled": 0, "live": 1, "ended": 2}


@dataclasses.dataclass(frozen=True)
class MeetingsPage:
    """One page of meetings, newest first, and the cursor of the next page."""

    meetings: list[Meeting]
    next_cursor: str | None


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Meetings:
    """The meeting lifecycle on top of a :class:`~control.store.Store`."""

    def __init__(self, store: Store, clock: Callable[[], datetime.datetime] = utc_now) -> None:
        self._store = store
        self._clock = clock

    async def create(self, draft: MeetingDraft) -> Meeting:
        """Store a new scheduled meeting under a fresh id."""
        now = self._clock()
        meeting = Meeting(
            id=new_id(),
            title=draft.title,
            description=draft.description,
            host_identity=draft.host_identity,
            scheduled_start=draft.scheduled_start,
            status="scheduled",
            created_at=now,
            updated_at=now,
        )
        await self._store.create_meeting(meeting)
        return meeting

    async def get(self, meeting_id: str) -> Meeting:
        """The meeting, or MeetingNotFound."""
        meeting = await self._store.get_meeting(meeting_id)
        if meeting is None:
            raise _not_found(meeting_id)
        return meeting

    async def page(self, limit: int, cursor: str | None) -> MeetingsPage:
        """Up to ``limit`` meetings after ``cursor`` (from the previous page)."""
        before = None if cursor is None else _decode_cursor(cursor)
        # One extra row tells whether there is a next page without a COUNT.
        rows = await self._store.list_meetings(limit + 1, before)
        meetings = rows[:limit]
        next_cursor = _encode_cursor(meetings[-1]) if len(rows) > limit else None
        return MeetingsPage(meetings=meetings, next_cursor=next_cursor)

    async def update(self, meeting_id: str, changes: MeetingChanges) -> Meeting:
        """Apply a PATCH; InvalidTransition if the status would move backwards."""

        def change(meeting: Meeting) -> Meeting:
            status = changes.status or meeting.status
            if _STATUS_ORDER[status] < _STATUS_ORDER[meeting.status]:
                raise InvalidTransition(
                    f"a meeting that is {meeting.status} cannot become {status}",
                    status=meeting.status,
                )
            scheduled_start = changes.scheduled_start or meeting.scheduled_start
            host_identity = changes.host_identity or meeting.host_identity
            return dataclasses.replace(
                meeting,
                title=changes.title or meeting.title,
                description=(
                    meeting.description if changes.description is None else changes.description
                ),
                scheduled_start=None if changes.clear_scheduled_start else scheduled_start,
                host_identity=None if changes.clear_host_identity else host_identity,
                status=status,
                updated_at=self._clock(),
            )

        meeting = await self._store.update_meeting(meeting_id, change)
        if meeting is None:
            raise _not_found(meeting_id)
        return meeting

    async def delete(self, meeting_id: str) -> None:
        """Delete the meeting and its participants, or MeetingNotFound."""
        if not await self._store.delete_meeting(meeting_id):
            raise _not_found(meeting_id)


def _not_found(meeting_id: str) -> MeetingNotFound:
    return MeetingNotFound(f"no meeting with id '{meeting_id}'", meeting_id=meeting_id)


def _encode_cursor(meeting: Meeting) -> str:
    # Opaque to callers: the keyset position (created_at, id) of the last row.
    key = f"{meeting.created_at.isoformat()}|{meeting.id}"
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime.datetime, str]:
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, meeting_id = key.split("|", 1)
        moment = datetime.datetime.fromisoformat(created_at)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidParameter(
            "'cursor' is not a cursor this server handed out", parameter="cursor"
        ) from exc
    if moment.tzinfo is None:
        raise InvalidParameter(
            "'cursor' is not a cursor this server handed out", parameter="cursor"
        )
    return moment, meeting_id
