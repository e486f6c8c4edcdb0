"""Breakout rooms: a meeting split into rooms for a while, then brought back together.

Hosts open N rooms with manual assignments and/or an automatic round-robin
of the connected participants who are not hosts; the media plane moves each
assigned participant into their room over their existing connections
(``assign_rooms``). Hosts may move people between rooms. Closing returns
everyone to the main meeting, now or after a countdown that the clients are
told about (``closes_at``); rooms opened with a duration close by themselves.
One set of rooms per meeting is open at a time.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass
from typing import Any

from .audit import AuditEntry, append_audit
from .auth import Caller
from .bodies import BreakoutPlan
from .context import ControlContext, rfc3339
from .database import Database, parse_timestamp, timestamp
from .errors import Conflict, InvalidField, MeetingEnded, NotFound
from .store import new_id

__all__ = ["Breakout", "BreakoutRoom", "Breakouts"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreakoutRoom:
    id: str
    name: str
    participants: tuple[str, ...]


@dataclass(frozen=True)
class Breakout:
    """A meeting's open rooms and when they close (None: when a host closes them)."""

    rooms: tuple[BreakoutRoom, ...]
    closes_at: datetime.datetime | None

    def room_of(self, participant_id: str) -> BreakoutRoom | None:
        for room in self.rooms:
            if participant_id in room.participants:
                return room
        return None

    def placements(self) -> dict[str, tuple[str, str] | None]:
        """Everyone assigned, with their room: what ``assign_rooms`` takes."""
        return {pid: (room.id, room.name) for room in self.rooms for pid in room.participants}

    def to_json(self) -> dict[str, Any]:
        return {
            "rooms": [
                {"id": room.id, "name": room.name, "participants": list(room.participants)}
                for room in self.rooms
            ],
            "closes_at": None if self.closes_at is None else rfc3339(self.closes_at),
        }


NO_BREAKOUT = Breakout(rooms=(), closes_at=None)


class BreakoutStore:
    """Open rooms and assignments in SQLite."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def open(
        self,
        meeting_id: str,
        rooms: list[tuple[str, str]],
        assignments: dict[str, str],
        now: datetime.datetime,
        closes_at: datetime.datetime | None,
        audit: AuditEntry,
    ) -> bool:
        """Store a new set of rooms; False if rooms are open already."""
        async with self._database.transaction() as db:
            async with db.execute(
                "SELECT 1 FROM breakout_sessions WHERE meeting_id = ?", (meeting_id,)
            ) as cursor:
                if await cursor.fetchone() is not None:
                    return False
            await db.execute(
                "INSERT INTO breakout_sessions (meeting_id, opened_at, closes_at) VALUES (?, ?, ?)",
                (meeting_id, timestamp(now), None if closes_at is None else timestamp(closes_at)),
            )
            await db.executemany(
                "INSERT INTO breakout_rooms (id, meeting_id, name, position) VALUES (?, ?, ?, ?)",
                [(rid, meeting_id, name, i) for i, (rid, name) in enumerate(rooms)],
            )
            await db.executemany(
                "INSERT INTO breakout_assignments (participant_id, meeting_id, room_id)"
                " VALUES (?, ?, ?)",
                [(pid, meeting_id, rid) for pid, rid in assignments.items()],
            )
            await append_audit(db, [audit])
        return True

    async def get(self, meeting_id: str) -> Breakout | None:
        async with self._database.reading() as db:
            async with db.execute(
                "SELECT closes_at FROM breakout_sessions WHERE meeting_id = ?", (meeting_id,)
            ) as cursor:
                session = await cursor.fetchone()
            if session is None:
                return None
            async with db.execute(
                "SELECT r.id, r.name, a.participant_id FROM breakout_rooms r"
                " LEFT JOIN breakout_assignments a ON a.room_id = r.id"
                " WHERE r.meeting_id = ? ORDER BY r.position, a.rowid",
                (meeting_id,),
            ) as cursor:
                rows = await cursor.fetchall()
        rooms: dict[str, tuple[str, list[str]]] = {}
        for room_id, name, participant_id in rows:
            entry = rooms.setdefault(str(room_id), (str(name), []))
            if participant_id is not None:
                entry[1].append(str(participant_id))
        return Breakout(
            rooms=tuple(
                BreakoutRoom(rid, name, tuple(pids)) for rid, (name, pids) in rooms.items()
            ),
            closes_at=None if session[0] is None else parse_timestamp(session[0]),
        )

    async def assign(
        self, meeting_id: str, participant_id: str, room_id: str | None, audit: AuditEntry
    ) -> None:
        async with self._database.transaction() as db:
            await db.execute(
                "DELETE FROM breakout_assignments WHERE participant_id = ?", (participant_id,)
            )
            if room_id is not None:
                await db.execute(
                    "INSERT INTO breakout_assignments (participant_id, meeting_id, room_id)"
                    " VALUES (?, ?, ?)",
                    (participant_id, meeting_id, room_id),
                )
            await append_audit(db, [audit])

    async def set_closes_at(self, meeting_id: str, closes_at: datetime.datetime) -> None:
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE breakout_sessions SET closes_at = ? WHERE meeting_id = ?",
                (timestamp(closes_at), meeting_id),
            )

    async def close(self, meeting_id: str, audit: AuditEntry | None) -> bool:
        """Remove the rooms (and assignments); False if none were open."""
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "DELETE FROM breakout_sessions WHERE meeting_id = ?", (meeting_id,)
            )
            if cursor.rowcount and audit is not None:
                await append_audit(db, [audit])
            return bool(cursor.rowcount)


class Breakouts:
    """Opens, changes and closes breakout rooms, and closes them on time."""

    def __init__(self, context: ControlContext) -> None:
        self._context = context
        self._rooms = BreakoutStore(context.store)
        self._timers: dict[str, asyncio.Task[None]] = {}

    async def current(self, meeting_id: str) -> Breakout:
        """The open rooms (none: an empty set)."""
        await self._context.meeting(meeting_id)
        return await self._rooms.get(meeting_id) or NO_BREAKOUT

    async def open(self, meeting_id: str, plan: BreakoutPlan, caller: Caller) -> Breakout:
        """Open rooms, assign people, move them; Conflict if rooms are open already."""
        context = self._context
        meeting = await context.meeting(meeting_id)
        if meeting.status == "ended":
            raise MeetingEnded(f"meeting '{meeting_id}' has ended", meeting_id=meeting_id)
        rooms = [(new_id(), name) for name in plan.names]
        assignments = await self._assignments(meeting_id, plan, rooms)
        now = context.clock()
        closes_at = (
            None if plan.duration_s is None else now + datetime.timedelta(seconds=plan.duration_s)
        )
        entry = AuditEntry(
            meeting_id,
            caller.actor,
            "breakout.open",
            now,
            target=meeting_id,
            details={"rooms": list(plan.names), "assignments": assignments},
        )
        if not await self._rooms.open(meeting_id, rooms, assignments, now, closes_at, entry):
            raise Conflict("breakout rooms are open already; close them first")
        breakout = await self.current(meeting_id)
        await context.media.assign_rooms(meeting_id, breakout.placements(), _iso(closes_at))
        if closes_at is not None:
            self._schedule(meeting_id, closes_at)
        return breakout

    async def move(
        self, meeting_id: str, participant_id: str, room_id: str | None, caller: Caller
    ) -> Breakout:
        """Put one participant in a room, or back in the main meeting (None)."""
        context = self._context
        breakout = await self._open_breakout(meeting_id)
        participant = await context.store.get_participant(meeting_id, participant_id)
        if participant is None or participant.status not in ("joined", "left"):
            raise InvalidField(
                f"no participant '{participant_id}' in this meeting", field="participant_id"
            )
        room = None
        if room_id is not None:
            room = next((r for r in breakout.rooms if r.id == room_id), None)
            if room is None:
                raise InvalidField(f"no breakout room '{room_id}' is open", field="room_id")
        entry = AuditEntry(
            meeting_id,
            caller.actor,
            "breakout.move",
            context.clock(),
            target=participant_id,
            details={"room_id": room_id},
        )
        await self._rooms.assign(meeting_id, participant_id, room_id, entry)
        placement = None if room is None else (room.id, room.name)
        await context.media.assign_rooms(
            meeting_id, {participant_id: placement}, _iso(breakout.closes_at)
        )
        return await self.current(meeting_id)

    async def close(self, meeting_id: str, countdown_s: int, caller: Caller) -> Breakout:
        """Bring everyone back to the main meeting, now or after ``countdown_s`` seconds."""
        context = self._context
        breakout = await self._open_breakout(meeting_id)
        if countdown_s == 0:
            await self._close_now(meeting_id, caller.actor)
            return NO_BREAKOUT
        closes_at = context.clock() + datetime.timedelta(seconds=countdown_s)
        await self._rooms.set_closes_at(meeting_id, closes_at)
        # Everyone stays where they are and is told when the rooms close.
        await context.media.assign_rooms(meeting_id, breakout.placements(), _iso(closes_at))
        self._schedule(meeting_id, closes_at)
        await context.store.record_audit(
            AuditEntry(
                meeting_id,
                caller.actor,
                "breakout.countdown",
                context.clock(),
                target=meeting_id,
                details={"closes_at": rfc3339(closes_at)},
            )
        )
        return await self.current(meeting_id)

    async def placement(self, meeting_id: str, participant_id: str) -> None:
        """Put a (re)connected participant back in their room, if they have one."""
        breakout = await self._rooms.get(meeting_id)
        room = None if breakout is None else breakout.room_of(participant_id)
        if breakout is not None and room is not None:
            await self._context.media.assign_rooms(
                meeting_id, {participant_id: (room.id, room.name)}, _iso(breakout.closes_at)
            )

    async def forget(self, meeting_id: str) -> None:
        """The meeting ended: drop its rooms without moving anyone (nobody is left)."""
        self._cancel(meeting_id)
        await self._rooms.close(meeting_id, None)

    async def shutdown(self) -> None:
        """Stop the timers (the rooms stay stored)."""
        for meeting_id in list(self._timers):
            self._cancel(meeting_id)

    async def _assignments(
        self, meeting_id: str, plan: BreakoutPlan, rooms: list[tuple[str, str]]
    ) -> dict[str, str]:
        store = self._context.store
        in_meeting = {
            p.id: p for p in await store.list_participants(meeting_id, ("joined", "left"))
        }
        assignments: dict[str, str] = {}
        for participant_id, index in plan.assignments.items():
            if participant_id not in in_meeting:
                raise InvalidField(
                    f"no participant '{participant_id}' in this meeting",
                    field="assignments",
                    participant_id=participant_id,
                )
            assignments[participant_id] = rooms[index][0]
        if plan.auto_assign:
            connected = [e["participant_id"] for e in self._context.media.roster(meeting_id)]
            others = [
                pid
                for pid in connected
                if pid in in_meeting and in_meeting[pid].role != "host" and pid not in assignments
            ]
            for position, participant_id in enumerate(others):
                assignments[participant_id] = rooms[position % len(rooms)][0]
        return assignments

    async def _open_breakout(self, meeting_id: str) -> Breakout:
        await self._context.meeting(meeting_id)
        breakout = await self._rooms.get(meeting_id)
        if breakout is None:
            raise NotFound("no breakout rooms are open in this meeting", meeting_id=meeting_id)
        return breakout

    async def _close_now(self, meeting_id: str, actor: str) -> None:
        breakout = await self._rooms.get(meeting_id)
        if breakout is None:
            return
        entry = AuditEntry(meeting_id, actor, "breakout.close", self._context.clock(), meeting_id)
        if await self._rooms.close(meeting_id, entry):
            back: dict[str, tuple[str, str] | None] = dict.fromkeys(breakout.placements())
            await self._context.media.assign_rooms(meeting_id, back, None)
        if self._timers.get(meeting_id) is not asyncio.current_task():
            self._cancel(meeting_id)

    def _schedule(self, meeting_id: str, closes_at: datetime.datetime) -> None:
        self._cancel(meeting_id)
        self._timers[meeting_id] = asyncio.create_task(self._close_at(meeting_id, closes_at))

    async def _close_at(self, meeting_id: str, closes_at: datetime.datetime) -> None:
        delay = (closes_at - self._context.clock()).total_seconds()
        await asyncio.sleep(max(0.0, delay))
        try:
            await self._close_now(meeting_id, "system")
        except Exception:
            log.exception("could not close the breakout rooms of meeting %s", meeting_id)
        finally:
            if self._timers.get(meeting_id) is asyncio.current_task():
                del self._timers[meeting_id]

    def _cancel(self, meeting_id: str) -> None:
        task = self._timers.pop(meeting_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()


def _iso(moment: datetime.datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)
