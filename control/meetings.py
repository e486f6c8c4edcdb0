"""Meetings: create, read, page through, change, start, end and delete them.

Status moves forward only: ``scheduled`` -> ``live`` -> ``ended`` (a meeting
may also end without having been live). An ended meeting stays ended: its
participants are disconnected, those waiting in its lobby are turned away,
and nobody joins it again.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
from collections.abc import Awaitable, Callable, Sequence

from .audit import AuditEntry
from .auth import Caller
from .bodies import MeetingChanges, MeetingDraft
from .context import ControlContext, not_found
from .errors import InvalidParameter, InvalidTransition
from .lobby import Lobby
from .params import MAX_PAGE_SIZE
from .store import Meeting, MeetingStatus, new_id

__all__ = ["MAX_PAGE_SIZE", "Meetings", "MeetingsPage"]

_STATUS_ORDER: dict[MeetingStatus, int] = {"scheduled": 0, "live": 1, "ended": 2}


@dataclasses.dataclass(frozen=True)
class MeetingsPage:
    """One page of meetings, newest first, and the cursor of the next page."""

    meetings: list[Meeting]
    next_cursor: str | None


class Meetings:
    """The meeting lifecycle on top of the store, telling the media plane when one ends."""

    def __init__(self, context: ControlContext, lobby: Lobby) -> None:
        self._context = context
        self._store = context.store
        self._clock = context.clock
        self._lobby = lobby
        # Run after a meeting ended or was deleted (breakout timers, ...).
        self.on_end: list[Callable[[str], Awaitable[None]]] = []

    async def create(self, draft: MeetingDraft, caller: Caller) -> Meeting:
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
        entry = AuditEntry(meeting.id, caller.actor, "meeting.create", now, target=meeting.id)
        await self._store.create_meeting(meeting, [entry])
        return meeting

    async def get(self, meeting_id: str) -> Meeting:
        """The meeting, or MeetingNotFound."""
        return await self._context.meeting(meeting_id)

    async def page(self, limit: int, cursor: str | None) -> MeetingsPage:
        """Up to ``limit`` meetings after ``cursor`` (from the previous page)."""
        before = None if cursor is None else _decode_cursor(cursor)
        # One extra row tells whether there is a next page without a COUNT.
        rows = await self._store.list_meetings(limit + 1, before)
        meetings = rows[:limit]
        next_cursor = _encode_cursor(meetings[-1]) if len(rows) > limit else None
        return MeetingsPage(meetings=meetings, next_cursor=next_cursor)

    async def start(self, meeting_id: str, caller: Caller) -> Meeting:
        """Make a meeting live (a live one stays live); an ended one cannot start again."""
        return await self.update(meeting_id, MeetingChanges(status="live"), caller)

    async def end(self, meeting_id: str, caller: Caller) -> Meeting:
        """End a meeting for good: everyone is disconnected, nobody joins again."""
        return await self.update(meeting_id, MeetingChanges(status="ended"), caller)

    async def update(self, meeting_id: str, changes: MeetingChanges, caller: Caller) -> Meeting:
        """Apply a PATCH; InvalidTransition if the status would move backwards."""
        waiting = await self._store.list_participants(meeting_id, ("waiting",))

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

        previous: list[MeetingStatus] = []

        def audit(before: Meeting, after: Meeting) -> Sequence[AuditEntry]:
            previous.append(before.status)
            return _lifecycle_entries(before, after, caller, self._clock())

        meeting = await self._store.update_meeting(meeting_id, change, audit)
        if meeting is None:
            raise not_found(meeting_id)
        if previous and previous[0] != meeting.status:
            self._announce(meeting, caller, "meeting ended")
        if meeting.status == "ended" and changes.status == "ended":
            for participant in waiting:
                self._lobby.decided(participant.id)
            await self._ended(meeting_id, "meeting ended")
        return meeting

    async def delete(self, meeting_id: str, caller: Caller) -> None:
        """Delete the meeting and everything about it but its audit log, or MeetingNotFound."""
        entry = AuditEntry(meeting_id, caller.actor, "meeting.delete", self._clock(), meeting_id)
        waiting = await self._store.list_participants(meeting_id, ("waiting",))
        meeting = await self._store.get_meeting(meeting_id)
        if meeting is None or not await self._store.delete_meeting(meeting_id, [entry]):
            raise not_found(meeting_id)
        if meeting.status != "ended":
            self._announce(dataclasses.replace(meeting, status="ended"), caller, "meeting deleted")
        for participant in waiting:
            self._lobby.decided(participant.id)
        await self._ended(meeting_id, "meeting deleted")

    def _announce(self, meeting: Meeting, caller: Caller, reason: str) -> None:
        """``meeting.started`` / ``meeting.ended`` for integrators (control.webhooks)."""
        data = {"title": meeting.title, "status": meeting.status, "by": caller.actor}
        if meeting.status == "live":
            self._context.publish("meeting.started", meeting.id, data)
        elif meeting.status == "ended":
            self._context.publish("meeting.ended", meeting.id, {**data, "reason": reason})

    async def _ended(self, meeting_id: str, reason: str) -> None:
        await self._context.media.end_meeting(meeting_id, reason)
        for hook in self.on_end:
            await hook(meeting_id)


def _lifecycle_entries(
    before: Meeting, after: Meeting, caller: Caller, now: datetime.datetime
) -> list[AuditEntry]:
    entries = []
    if before.status != after.status:
        action = {"live": "meeting.start", "ended": "meeting.end"}.get(
            after.status, "meeting.update"
        )
        entries.append(
            AuditEntry(
                after.id,
                caller.actor,
                action,
                now,
                target=after.id,
                details={"from": before.status, "to": after.status},
            )
        )
    changed = [
        name
        for name in ("title", "description", "host_identity", "scheduled_start")
        if getattr(before, name) != getattr(after, name)
    ]
    if changed:
        entries.append(
            AuditEntry(
                after.id, caller.actor, "meeting.update", now, after.id, details={"fields": changed}
            )
        )
    return entries


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
