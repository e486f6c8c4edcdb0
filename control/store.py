"""Where meetings and participants are kept: a small interface and its SQLite backend.

The control plane talks to :class:`Store` only, so that another backend
(PostgreSQL) can come later without touching the API. :class:`SqliteStore`
keeps one aiosqlite connection and applies the versioned migrations in
:data:`MIGRATIONS` at open, in one transaction.
"""

from __future__ import annotations

import abc
import asyncio
import datetime
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import aiosqlite

from townhall.contract import Role

__all__ = [
    "MIGRATIONS",
    "Meeting",
    "Migration",
    "MeetingStatus",
    "Participant",
    "SqliteStore",
    "Store",
    "new_id",
]

MeetingStatus = Literal["scheduled", "live", "ended"]
MEETING_STATUSES: tuple[MeetingStatus, ...] = ("scheduled", "live", "ended")

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
    """Someone who was let into a meeting (one row per join)."""

    id: str
    meeting_id: str
    identity: str
    name: str
    email: str | None
    role: Role
    joined_at: datetime.datetime


class Store(abc.ABC):
    """Persistence for the control plane; every method is one atomic operation."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connection."""

    @abc.abstractmethod
    async def create_meeting(self, meeting: Meeting) -> None:
        """Insert a new meeting."""

    @abc.abstractmethod
    async def get_meeting(self, meeting_id: str) -> Meeting | None:
        """The meeting with this id, or None."""

    @abc.abstractmethod
    async def list_meetings(
        self, limit: int, before: tuple[datetime.datetime, str] | None
    ) -> list[Meeting]:
        """Up to ``limit`` meetings, newest first, older than ``before`` (created_at, id)."""

    @abc.abstractmethod
    async def update_meeting(
        self, meeting_id: str, change: Callable[[Meeting], Meeting]
    ) -> Meeting | None:
        """Apply ``change`` to the stored meeting atomically; None if there is none.

        ``change`` may raise to refuse; nothing is written then.
        """

    @abc.abstractmethod
    async def delete_meeting(self, meeting_id: str) -> bool:
        """Delete a meeting and its participants; False if there was none."""

    @abc.abstractmethod
    async def add_participant(self, participant: Participant) -> bool:
        """Record a participant; False if the meeting does not exist (anymore)."""

    @abc.abstractmethod
    async def list_participants(self, meeting_id: str) -> list[Participant]:
        """Everyone who joined the meeting, in join order."""


@dataclass(frozen=True)
class Migration:
    """One step of the schema; versions are applied in order, each exactly once."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "meetings and participants",
        (
            """
            CREATE TABLE meetings (
                id TEXT PRIMARY KEY,
                title TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                host_identity TEXT,
                scheduled_start TEXT,
                status TEXT NOT NULL CHECK (status IN ('scheduled', 'live', 'ended')),
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX meetings_by_creation ON meetings (created_at, id)",
            """
            CREATE TABLE participants (
                id TEXT PRIMARY KEY,
                meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
                identity TEXT NOT NULL,
                name TEXT NOT NULL,
                email TEXT,
                role TEXT NOT NULL CHECK (role IN ('host', 'participant', 'viewer')),
                joined_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX participants_by_meeting ON participants (meeting_id, joined_at)",
        ),
    ),
)

_MEETING_COLUMNS = (
    "id, title, description, host_identity, scheduled_start, status, created_at, updated_at"
)
_PARTICIPANT_COLUMNS = "id, meeting_id, identity, name, email, role, joined_at"


class SqliteStore(Store):
    """The embedded default: one SQLite file through aiosqlite."""

    def __init__(self, path: Path, migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
        self._path = path
        self._migrations = migrations
        self._db: aiosqlite.Connection | None = None
        # One connection serves every request. aiosqlite runs one statement at a
        # time, but two coroutines could still interleave the statements of two
        # transactions; holding this lock for a whole transaction prevents that.
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below),
        # so that migrations, DDL included, are all-or-nothing.
        self._db = await aiosqlite.connect(self._path, isolation_level=None)
        try:
            await self._db.execute("PRAGMA foreign_keys = ON")
            await self._db.execute("PRAGMA journal_mode = WAL")
            await self._db.execute("PRAGMA busy_timeout = 5000")
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def schema_version(self) -> int:
        """The newest migration applied."""
        query = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
        async with self._reading() as db, db.execute(query) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def create_meeting(self, meeting: Meeting) -> None:
        async with self._transaction() as db:
            await db.execute(
                f"INSERT INTO meetings ({_MEETING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _meeting_row(meeting),
            )

    async def get_meeting(self, meeting_id: str) -> Meeting | None:
        async with self._reading() as db:
            return await _fetch_meeting(db, meeting_id)

    async def list_meetings(
        self, limit: int, before: tuple[datetime.datetime, str] | None
    ) -> list[Meeting]:
        query = f"SELECT {_MEETING_COLUMNS} FROM meetings"
        params: tuple[object, ...] = ()
        if before is not None:
            query += " WHERE (created_at, id) < (?, ?)"
            params = (_timestamp(before[0]), before[1])
        query += " ORDER BY created_at DESC, id DESC LIMIT ?"
        async with self._reading() as db, db.execute(query, (*params, limit)) as cursor:
            rows = await cursor.fetchall()
        return [_meeting(row) for row in rows]

    async def update_meeting(
        self, meeting_id: str, change: Callable[[Meeting], Meeting]
    ) -> Meeting | None:
        async with self._transaction() as db:
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
            return updated

    async def delete_meeting(self, meeting_id: str) -> bool:
        async with self._transaction() as db:
            cursor = await db.execute("DELETE FROM meetings WHERE id = ?", (meeting_id,))
            return cursor.rowcount > 0

    async def add_participant(self, participant: Participant) -> bool:
        try:
            async with self._transaction() as db:
                await db.execute(
                    f"INSERT INTO participants ({_PARTICIPANT_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        participant.id,
                        participant.meeting_id,
                        participant.identity,
                        participant.name,
                        participant.email,
                        participant.role,
                        _timestamp(participant.joined_at),
                    ),
                )
        except sqlite3.IntegrityError:
            # The foreign key: the meeting was deleted between check and insert.
            return False
        return True

    async def list_participants(self, meeting_id: str) -> list[Participant]:
        query = (
            f"SELECT {_PARTICIPANT_COLUMNS} FROM participants"
            " WHERE meeting_id = ? ORDER BY joined_at, id"
        )
        async with self._reading() as db, db.execute(query, (meeting_id,)) as cursor:
            rows = await cursor.fetchall()
        return [
            Participant(
                id=row[0],
                meeting_id=row[1],
                identity=row[2],
                name=row[3],
                email=row[4],
                role=cast(Role, row[5]),
                joined_at=_parse_timestamp(row[6]),
            )
            for row in rows
        ]

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[aiosqlite.Connection]:
        db = self._connection()
        async with self._lock:
            yield db

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        db = self._connection()
        async with self._lock:
            # IMMEDIATE takes the write lock up front, so a read-modify-write
            # cannot be overtaken by another writer on the same file.
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    async def _migrate(self) -> None:
        async with self._transaction() as db:
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            async with db.execute("SELECT version FROM schema_migrations") as cursor:
                applied = {row[0] for row in await cursor.fetchall()}
            unknown = applied - {migration.version for migration in self._migrations}
            if unknown:
                # Written by a newer Townhall: running older code on it could corrupt it.
                raise RuntimeError(
                    f"{self._path}: schema version {max(unknown)} is newer than this Townhall"
                )
            now = _timestamp(datetime.datetime.now(datetime.UTC))
            for migration in self._migrations:
                if migration.version in applied:
                    continue
                for statement in migration.statements:
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, now),
                )


async def _fetch_meeting(db: aiosqlite.Connection, meeting_id: str) -> Meeting | None:
    query = f"SELECT {_MEETING_COLUMNS} FROM meetings WHERE id = ?"
    async with db.execute(query, (meeting_id,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else _meeting(row)


def _meeting_row(meeting: Meeting) -> tuple[object, ...]:
    return (
        meeting.id,
        meeting.title,
        meeting.description,
        meeting.host_identity,
        None if meeting.scheduled_start is None else _timestamp(meeting.scheduled_start),
        meeting.status,
        _timestamp(meeting.created_at),
        _timestamp(meeting.updated_at),
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
        scheduled_start=None if scheduled_start is None else _parse_timestamp(scheduled_start),
        status=cast(MeetingStatus, status),
        created_at=_parse_timestamp(row[6]),
        updated_at=_parse_timestamp(row[7]),
    )


def _timestamp(moment: datetime.datetime) -> str:
    # Fixed width, UTC: text order is time order, which list_meetings relies on.
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_timestamp(text: object) -> datetime.datetime:
    return datetime.datetime.fromisoformat(str(text))
