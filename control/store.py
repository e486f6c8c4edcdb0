"""Meetings, participants, policies and invites in SQLite.

:class:`SqliteStore` is the control plane's :class:`~control.database.Database`
with the queries of its core records. Changes that depend on what is stored
take a function that decides inside the transaction (``update_meeting``,
``admit``, ``update_participant``, ``change_policy``): the decision and the
write are atomic, so 50 simultaneous joins to a meeting with 10 places admit
exactly 10. Chat, audit and breakout rooms keep their own queries in their
modules, on the same database.
"""

from __future__ import annotations

import datetime
import json
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import aiosqlite

from townhall.contract import Role

from .audit import AuditEntry, append_audit
from .database import Database, Migration, parse_timestamp, timestamp
from .migrations import MIGRATIONS

__all__ = [
    "MIGRATIONS",
    "AdmissionSnapshot",
    "Invite",
    "Meeting",
    "MeetingStatus",
    "Migration",
    "Participant",
    "ParticipantStatus",
    "Settlement",
    "SqliteStore",
    "new_id",
]

MeetingStatus = Literal["scheduled", "live", "ended"]
MEETING_STATUSES: tuple[MeetingStatus, ...] = ("scheduled", "live", "ended")
ParticipantStatus = Literal["waiting", "joined", "denied", "removed", "left"]
PARTICIPANT_STATUSES: tuple[ParticipantStatus, ...] = (
    "waiting",
    "joined",
    "denied",
    "removed",
    "left",
)

# Lower-case letters and digits only: ids end up in URLs people read and type.
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_id(length: int = 12) -> str:
    """A short, URL-safe random id (12 characters carry about 62 bits)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class Meeting:
    """A meeting as stored."""

    id: str
    title: str
    description: str
    host_identity: str | None
    scheduled_start: datetime.datetime | None
    status: MeetingStatus
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclass(frozen=True)
class Participant:
    """Someone who asked to join a meeting (one row per join), and where they stand."""

    id: str
    meeting_id: str
    identity: str
    name: str
    email: str | None
    role: Role
    joined_at: datetime.datetime
    status: ParticipantStatus = "joined"
    # Why they were denied, removed or left.
    status_reason: str | None = None
    # Connected to the meeting's media now (as the SFU reported).
    connected: bool = False
    # When their join token expires: until then a place is kept for them.
    token_expires_at: datetime.datetime | None = None
    invite_id: str | None = None

    def holds_place(self, now: datetime.datetime) -> bool:
        """Whether they count against ``max_participants``."""
        if self.status != "joined":
            return False
        return self.connected or (self.token_expires_at is not None and self.token_expires_at > now)


@dataclass(frozen=True)
class Invite:
    """A signed invite's record: what it grants, and how often it was used."""

    id: str
    meeting_id: str
    email: str | None
    role: Role | None
    max_uses: int | None
    uses: int
    expires_at: datetime.datetime
    created_at: datetime.datetime
    created_by: str


@dataclass(frozen=True)
class AdmissionSnapshot:
    """What an admission decision depends on, read in one transaction."""

    meeting: Meeting
    policy: dict[str, Any] | None
    # Participants holding a place now (see Participant.holds_place).
    active: int
    invite: Invite | None
    participants: list[Participant] = field(default_factory=list)


@dataclass(frozen=True)
class Settlement:
    """What a decision made inside a transaction writes."""

    participant: Participant | None = None
    audit: Sequence[AuditEntry] = ()
    # Count one use of the snapshot's invite.
    use_invite: bool = False


_MEETING_COLUMNS = (
    "id, title, description, host_identity, scheduled_start, status, created_at, updated_at"
)
_PARTICIPANT_COLUMNS = (
    "id, meeting_id, identity, name, email, role, joined_at, status, status_reason,"
    " connected, token_expires_at, invite_id"
)
_INVITE_COLUMNS = "id, meeting_id, email, role, max_uses, uses, expires_at, created_at, created_by"
_ACTIVE = (
    "SELECT COUNT(*) FROM participants WHERE meeting_id = ? AND status = 'joined'"
    " AND (connected = 1 OR token_expires_at > ?)"
)


class SqliteStore(Database):
    """The embedded default: one SQLite file through aiosqlite."""

    def __init__(self, path: Path, migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
        super().__init__(path, migrations)

    # Meetings

    async def create_meeting(self, meeting: Meeting, audit: Sequence[AuditEntry] = ()) -> None:
        async with self.transaction() as db:
            await db.execute(
                f"INSERT INTO meetings ({_MEETING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _meeting_row(meeting),
            )
            await append_audit(db, audit)

    async def get_meeting(self, meeting_id: str) -> Meeting | None:
        async with self.reading() as db:
            return await _fetch_meeting(db, meeting_id)

    async def list_meetings(
        self, limit: int, before: tuple[datetime.datetime, str] | None
    ) -> list[Meeting]:
        """Up to ``limit`` meetings, newest first, older than ``before`` (created_at, id)."""
        query = f"SELECT {_MEETING_COLUMNS} FROM meetings"
        params: tuple[object, ...] = ()
        if before is not None:
            query += " WHERE (created_at, id) < (?, ?)"
            params = (timestamp(before[0]), before[1])
        query += " ORDER BY created_at DESC, id DESC LIMIT ?"
        async with self.reading() as db, db.execute(query, (*params, limit)) as cursor:
            rows = await cursor.fetchall()
        return [_meeting(row) for row in rows]

    async def update_meeting(
        self,
        meeting_id: str,
        change: Callable[[Meeting], Meeting],
        audit: Callable[[Meeting, Meeting], Sequence[AuditEntry]] | None = None,
    ) -> Meeting | None:
        """Apply ``change`` atomically; None if there is no such meeting.

        ``change`` may raise to refuse; nothing is written then. ``audit``
        gets the meeting before and after and returns the entries to write.
        When a meeting ends, those still waiting in its lobby are denied.
        """
        async with self.transaction() as db:
            current = await _fetch_meeting(db, meeting_id)
            if current is None:
                return None
            updated = change(current)
            row = _meeting_row(updated)
            await db.execute(
                "UPDATE meetings SET title = ?, description = ?, host_identity = ?,"
                " scheduled_start = ?, status = ?, created_at = ?, updated_at = ? WHERE id = ?",
                (*row[1:], meeting_id),
            )
            if updated.status == "ended" and current.status != "ended":
                await db.execute(
                    "UPDATE participants SET status = 'denied', status_reason = 'meeting ended'"
                    " WHERE meeting_id = ? AND status = 'waiting'",
                    (meeting_id,),
                )
            if audit is not None:
                await append_audit(db, audit(current, updated))
            return updated

    async def delete_meeting(self, meeting_id: str, audit: Sequence[AuditEntry] = ()) -> bool:
        """Delete a meeting and everything that belongs to it; False if there was none."""
        async with self.transaction() as db:
            cursor = await db.execute("DELETE FROM meetings WHERE id = ?", (meeting_id,))
            if cursor.rowcount > 0:
                await db.execute(
                    "DELETE FROM breakout_assignments WHERE meeting_id = ?", (meeting_id,)
                )
                await append_audit(db, audit)
            return cursor.rowcount > 0

    # Participants

    async def add_participant(self, participant: Participant) -> bool:
        """Record a participant as is; False if the meeting does not exist (anymore)."""
        try:
            async with self.transaction() as db:
                await _insert_participant(db, participant)
        except sqlite3.IntegrityError:
            # The foreign key: the meeting was deleted between check and insert.
            return False
        return True

    async def admission_snapshot(
        self, meeting_id: str, invite_id: str | None, now: datetime.datetime
    ) -> AdmissionSnapshot | None:
        """What a join would be decided on now, without changing anything."""
        async with self.reading() as db:
            return await _snapshot(db, meeting_id, invite_id, now)

    async def admit(
        self,
        meeting_id: str,
        invite_id: str | None,
        now: datetime.datetime,
        settle: Callable[[AdmissionSnapshot], Settlement],
    ) -> Settlement | None:
        """Decide a join on a consistent snapshot and write the outcome, atomically.

        None if the meeting does not exist. ``settle`` may raise; its audit
        entries are written either way only when it returns.
        """
        async with self.transaction() as db:
            snapshot = await _snapshot(db, meeting_id, invite_id, now)
            if snapshot is None:
                return None
            settlement = settle(snapshot)
            if settlement.participant is not None:
                await _insert_participant(db, settlement.participant)
            if settlement.use_invite and snapshot.invite is not None:
                await db.execute(
                    "UPDATE invites SET uses = uses + 1 WHERE id = ?", (snapshot.invite.id,)
                )
            await append_audit(db, settlement.audit)
            return settlement

    async def get_participant(self, meeting_id: str, participant_id: str) -> Participant | None:
        async with self.reading() as db:
            return await _fetch_participant(db, meeting_id, participant_id)

    async def list_participants(
        self, meeting_id: str, statuses: Sequence[ParticipantStatus] = PARTICIPANT_STATUSES
    ) -> list[Participant]:
        """Participants of a meeting with one of ``statuses``, in join order."""
        marks = ", ".join("?" for _ in statuses)
        query = (
            f"SELECT {_PARTICIPANT_COLUMNS} FROM participants"
            f" WHERE meeting_id = ? AND status IN ({marks}) ORDER BY joined_at, id"
        )
        async with self.reading() as db, db.execute(query, (meeting_id, *statuses)) as cursor:
            rows = await cursor.fetchall()
        return [_participant(row) for row in rows]

    async def update_participant(
        self,
        meeting_id: str,
        participant_id: str,
        change: Callable[[Participant, AdmissionSnapshot], Settlement],
        now: datetime.datetime,
    ) -> Settlement | None:
        """Change one participant atomically, deciding on the meeting's current state.

        None if there is no such participant. ``change`` returns the updated
        participant (None: leave it) and audit entries, or raises to refuse.
        """
        async with self.transaction() as db:
            current = await _fetch_participant(db, meeting_id, participant_id)
            if current is None:
                return None
            snapshot = await _snapshot(db, meeting_id, None, now)
            if snapshot is None:
                return None
            settlement = change(current, snapshot)
            if settlement.participant is not None:
                await _update_participant(db, settlement.participant)
            await append_audit(db, settlement.audit)
            return settlement

    async def disconnect_everyone(self) -> int:
        """Mark every participant as not connected (after a restart of the embedded SFU)."""
        async with self.transaction() as db:
            cursor = await db.execute(
                "UPDATE participants SET connected = 0,"
                " status = CASE status WHEN 'joined' THEN 'left' ELSE status END,"
                " status_reason = CASE status WHEN 'joined' THEN 'server restarted'"
                " ELSE status_reason END WHERE connected = 1"
            )
            return cursor.rowcount

    async def record_audit(self, *entries: AuditEntry) -> None:
        """Write audit entries in a transaction of their own."""
        async with self.transaction() as db:
            await append_audit(db, entries)

    # Policies

    async def get_policy(self, meeting_id: str) -> dict[str, Any] | None:
        """The meeting's stored policy (JSON object), or None when it has the defaults."""
        async with self.reading() as db:
            return await _fetch_policy(db, meeting_id)

    async def change_policy(
        self,
        meeting_id: str,
        now: datetime.datetime,
        change: Callable[[AdmissionSnapshot], tuple[dict[str, Any], Settlement, list[Participant]]],
    ) -> dict[str, Any] | None:
        """Replace a meeting's policy, deciding on its current state; None if no meeting.

        ``change`` returns the new policy, audit entries, and participants to
        update with it (those the new policy removes).
        """
        async with self.transaction() as db:
            snapshot = await _snapshot(db, meeting_id, None, now, with_participants=True)
            if snapshot is None:
                return None
            policy, settlement, updated = change(snapshot)
            await db.execute(
                "INSERT INTO meeting_policies (meeting_id, policy, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (meeting_id) DO UPDATE SET policy = excluded.policy,"
                " updated_at = excluded.updated_at",
                (meeting_id, json.dumps(policy, sort_keys=True), timestamp(now)),
            )
            for participant in updated:
                await _update_participant(db, participant)
            await append_audit(db, settlement.audit)
            return policy

    # Invites

    async def create_invite(self, invite: Invite, audit: Sequence[AuditEntry] = ()) -> bool:
        """Record an invite; False if the meeting does not exist (anymore)."""
        try:
            async with self.transaction() as db:
                await db.execute(
                    f"INSERT INTO invites ({_INVITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        invite.id,
                        invite.meeting_id,
                        invite.email,
                        invite.role,
                        invite.max_uses,
                        invite.uses,
                        timestamp(invite.expires_at),
                        timestamp(invite.created_at),
                        invite.created_by,
                    ),
                )
                await append_audit(db, audit)
        except sqlite3.IntegrityError:
            return False
        return True

    async def get_invite(self, invite_id: str) -> Invite | None:
        async with self.reading() as db:
            return await _fetch_invite(db, invite_id)


async def _snapshot(
    db: aiosqlite.Connection,
    meeting_id: str,
    invite_id: str | None,
    now: datetime.datetime,
    *,
    with_participants: bool = False,
) -> AdmissionSnapshot | None:
    meeting = await _fetch_meeting(db, meeting_id)
    if meeting is None:
        return None
    async with db.execute(_ACTIVE, (meeting_id, timestamp(now))) as cursor:
        row = await cursor.fetchone()
    invite = None if invite_id is None else await _fetch_invite(db, invite_id)
    participants: list[Participant] = []
    if with_participants:
        query = f"SELECT {_PARTICIPANT_COLUMNS} FROM participants WHERE meeting_id = ?"
        async with db.execute(query, (meeting_id,)) as cursor:
            participants = [_participant(r) for r in await cursor.fetchall()]
    return AdmissionSnapshot(
        meeting=meeting,
        policy=await _fetch_policy(db, meeting_id),
        active=int(row[0]) if row else 0,
        invite=invite if invite is not None and invite.meeting_id == meeting_id else None,
        participants=participants,
    )


async def _fetch_meeting(db: aiosqlite.Connection, meeting_id: str) -> Meeting | None:
    query = f"SELECT {_MEETING_COLUMNS} FROM meetings WHERE id = ?"
    async with db.execute(query, (meeting_id,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else _meeting(row)


async def _fetch_policy(db: aiosqlite.Connection, meeting_id: str) -> dict[str, Any] | None:
    query = "SELECT policy FROM meeting_policies WHERE meeting_id = ?"
    async with db.execute(query, (meeting_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    policy = json.loads(str(row[0]))
    if not isinstance(policy, dict):
        raise ValueError(f"meeting {meeting_id!r} has a policy that is not a JSON object")
    return policy


async def _fetch_participant(
    db: aiosqlite.Connection, meeting_id: str, participant_id: str
) -> Participant | None:
    query = f"SELECT {_PARTICIPANT_COLUMNS} FROM participants WHERE id = ? AND meeting_id = ?"
    async with db.execute(query, (participant_id, meeting_id)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else _participant(row)


async def _fetch_invite(db: aiosqlite.Connection, invite_id: str) -> Invite | None:
    query = f"SELECT {_INVITE_COLUMNS} FROM invites WHERE id = ?"
    async with db.execute(query, (invite_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    return Invite(
        id=str(row[0]),
        meeting_id=str(row[1]),
        email=None if row[2] is None else str(row[2]),
        role=None if row[3] is None else cast(Role, row[3]),
        max_uses=None if row[4] is None else int(row[4]),
        uses=int(row[5]),
        expires_at=parse_timestamp(row[6]),
        created_at=parse_timestamp(row[7]),
        created_by=str(row[8]),
    )


async def _insert_participant(db: aiosqlite.Connection, participant: Participant) -> None:
    await db.execute(
        f"INSERT INTO participants ({_PARTICIPANT_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        _participant_row(participant),
    )


async def _update_participant(db: aiosqlite.Connection, participant: Participant) -> None:
    row = _participant_row(participant)
    await db.execute(
        "UPDATE participants SET identity = ?, name = ?, email = ?, role = ?, joined_at = ?,"
        " status = ?, status_reason = ?, connected = ?, token_expires_at = ?, invite_id = ?"
        " WHERE id = ? AND meeting_id = ?",
        (*row[2:], row[0], row[1]),
    )


def _participant_row(participant: Participant) -> tuple[object, ...]:
    expires = participant.token_expires_at
    return (
        participant.id,
        participant.meeting_id,
        participant.identity,
        participant.name,
        participant.email,
        participant.role,
        timestamp(participant.joined_at),
        participant.status,
        participant.status_reason,
        int(participant.connected),
        None if expires is None else timestamp(expires),
        participant.invite_id,
    )


def _participant(row: sqlite3.Row | tuple[object, ...]) -> Participant:
    status = row[7]
    if status not in PARTICIPANT_STATUSES:
        raise ValueError(f"participant {row[0]!r} has unknown status {status!r}")
    return Participant(
        id=str(row[0]),
        meeting_id=str(row[1]),
        identity=str(row[2]),
        name=str(row[3]),
        email=None if row[4] is None else str(row[4]),
        role=cast(Role, row[5]),
        joined_at=parse_timestamp(row[6]),
        status=cast(ParticipantStatus, status),
        status_reason=None if row[8] is None else str(row[8]),
        connected=bool(row[9]),
        token_expires_at=None if row[10] is None else parse_timestamp(row[10]),
        invite_id=None if row[11] is None else str(row[11]),
    )


def _meeting_row(meeting: Meeting) -> tuple[object, ...]:
    return (
        meeting.id,
        meeting.title,
        meeting.description,
        meeting.host_identity,
        None if meeting.scheduled_start is None else timestamp(meeting.scheduled_start),
        meeting.status,
        timestamp(meeting.created_at),
        timestamp(meeting.updated_at),
    )


def _meeting(row: sqlite3.Row | tuple[object, ...]) -> Meeting:
    scheduled_start = row[4]
    status = row[5]
    if status not in MEETING_STATUSES:
        raise ValueError(f"meeting {row[0]!r} has unknown status {status!r}")
    return Meeting(
        id=str(row[0]),
        title=str(row[1]),
        description=str(row[2]),
        host_identity=None if row[3] is None else str(row[3]),
        scheduled_start=None if scheduled_start is None else parse_timestamp(scheduled_start),
        status=cast(MeetingStatus, status),
        created_at=parse_timestamp(row[6]),
        updated_at=parse_timestamp(row[7]),
    )
