"""The audit log: who decided what about whom in a meeting, when and why.

Entries are written in the same transaction as the change they record
(:func:`append_audit`), so that there is never a change without its entry or
an entry for a change that was rolled back. They are read a page at a time,
oldest first (``GET /api/v1/meetings/{id}/audit``).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from .database import Database, parse_timestamp, timestamp
from .errors import InvalidParameter

__all__ = ["AuditEntry", "AuditLog", "AuditPage", "append_audit", "decode_seq_cursor"]


@dataclass(frozen=True)
class AuditEntry:
    """One decision or action; ``actor`` is ``admin``, ``system`` or ``participant:<id>``."""

    meeting_id: str
    actor: str
    action: str
    at: datetime.datetime
    target: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    seq: int = 0


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next_cursor: str | None


async def append_audit(db: aiosqlite.Connection, entries: Iterable[AuditEntry]) -> None:
    """Write entries inside the caller's transaction."""
    rows = list(entries)
    if not rows:
        return
    await db.executemany(
        "INSERT INTO audit_log (meeting_id, at, actor, action, target, reason, details)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                entry.meeting_id,
                timestamp(entry.at),
                entry.actor,
                entry.action,
                entry.target,
                entry.reason,
                json.dumps(entry.details, sort_keys=True),
            )
            for entry in rows
        ],
    )


class AuditLog:
    """Reads the audit log a page at a time."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def page(self, meeting_id: str, limit: int, cursor: str | None) -> AuditPage:
        """Up to ``limit`` entries of a meeting after ``cursor``, oldest first."""
        after = decode_seq_cursor(cursor)
        query = (
            "SELECT seq, meeting_id, at, actor, action, target, reason, details FROM audit_log"
            " WHERE meeting_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        )
        async with (
            self._database.reading() as db,
            db.execute(query, (meeting_id, after, limit + 1)) as rows,
        ):
            found = list(await rows.fetchall())
        entries = [
            AuditEntry(
                seq=int(row[0]),
                meeting_id=str(row[1]),
                at=parse_timestamp(row[2]),
                actor=str(row[3]),
                action=str(row[4]),
                target=None if row[5] is None else str(row[5]),
                reason=None if row[6] is None else str(row[6]),
                details=json.loads(str(row[7])),
            )
            for row in found[:limit]
        ]
        next_cursor = str(entries[-1].seq) if len(found) > limit else None
        return AuditPage(entries=entries, next_cursor=next_cursor)


def decode_seq_cursor(cursor: str | None) -> int:
    """A cursor handed out by a sequence-ordered page: the last sequence number seen."""
    if cursor is None:
        return 0
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:
        raise InvalidParameter(
            "'cursor' is not a cursor this server handed out", parameter="cursor"
        )
    return int(cursor)
