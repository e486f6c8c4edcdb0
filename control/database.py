"""One SQLite file through aiosqlite: the connection, transactions, versioned migrations.

Every store of the control plane (:mod:`control.store`, :mod:`control.chat`,
:mod:`control.audit`, :mod:`control.breakout`) runs its SQL on one
:class:`Database`, so that a change spanning several of them (admit a
participant, count a use of an invite, write the audit entry) is one
transaction.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

__all__ = ["Database", "Migration", "parse_timestamp", "timestamp"]


@dataclass(frozen=True)
class Migration:
    """One step of the schema; versions are applied in order, each exactly once."""

    version: int
    name: str
    statements: tuple[str, ...]


class Database:
    """One aiosqlite connection shared by every request, with explicit transactions."""

    def __init__(self, path: Path, migrations: tuple[Migration, ...]) -> None:
        self._path = path
        self._migrations = migrations
        self._db: aiosqlite.Connection | None = None
        # One connection serves every request. aiosqlite runs one statement at a
        # time, but two coroutines could still interleave the statements of two
        # transactions; holding this lock for a whole transaction prevents that.
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        return self._path

    async def open(self) -> None:
        """Connect and bring the schema up to date (all-or-nothing)."""
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
        async with self.reading() as db, db.execute(query) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, for reads that need no transaction."""
        db = self._connection()
        async with self._lock:
            yield db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: committed at the end, rolled back if the block raises."""
        db = self._connection()
        async with self._lock:
            # IMMEDIATE takes the write lock up front, so a read-modify-write
            # (count, then insert) cannot be overtaken by another writer on the file.
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    async def _migrate(self) -> None:
        async with self.transaction() as db:
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
            now = timestamp(datetime.datetime.now(datetime.UTC))
            for migration in self._migrations:
                if migration.version in applied:
                    continue
                for statement in migration.statements:
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, now),
                )


def timestamp(moment: datetime.datetime) -> str:
    """Fixed width, UTC: text order is time order, which queries rely on."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: object) -> datetime.datetime:
    return datetime.datetime.fromisoformat(str(text))
