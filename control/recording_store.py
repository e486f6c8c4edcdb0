"""Recordings, their transcripts and summaries in SQLite (``meeting_recordings``,
``meeting_transcriptions``, ``meeting_summaries``).

A recording's row is written when it starts (``recording``) and completed when
the recorder reports its files (``completed`` or ``failed`` with the reason).
A transcript or summary row is ``pending`` from then until the recorder
reports it. At most one recording of a meeting runs at a time: a unique index
refuses a second, so two simultaneous starts cannot both succeed.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import aiosqlite

from .audit import AuditEntry, append_audit
from .database import Database, parse_timestamp, timestamp

__all__ = [
    "RecordingRecord",
    "RecordingRecords",
    "RecordingStatus",
    "ResultRecord",
    "ResultStatus",
]

RecordingStatus = Literal["recording", "completed", "failed"]
ResultStatus = Literal["pending", "completed", "failed"]
RESULT_STATUSES: tuple[ResultStatus, ...] = ("pending", "completed", "failed")
# What a restart does to work that was under way: it is lost.
RESTARTED = "the server restarted before it was finished"

_RECORDING_COLUMNS = (
    "id, meeting_id, status, reason, options, started_by, started_at, stopped_at, duration_s,"
    " retention_days, encrypted, files, details"
)
_WITH_RESULTS = (
    f"SELECT {', '.join('r.' + c.strip() for c in _RECORDING_COLUMNS.split(','))},"
    " t.status, s.status FROM meeting_recordings r"
    " LEFT JOIN meeting_transcriptions t ON t.recording_id = r.id"
    " LEFT JOIN meeting_summaries s ON s.recording_id = r.id"
)


@dataclass(frozen=True)
class RecordingRecord:
    """A recording as the control plane keeps it."""

    id: str
    meeting_id: str
    status: RecordingStatus
    options: dict[str, Any]
    started_by: str
    started_at: datetime.datetime
    retention_days: int
    encrypted: bool = False
    reason: str | None = None
    stopped_at: datetime.datetime | None = None
    duration_s: float | None = None
    # The recorder's file entries (path, kind, bytes, sha256, duration_s, ...).
    files: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    transcript_status: ResultStatus | None = None
    summary_status: ResultStatus | None = None

    def expires_at(self) -> datetime.datetime | None:
        """When retention deletes it; None: kept until erased."""
        if self.retention_days <= 0:
            return None
        return self.started_at + datetime.timedelta(days=self.retention_days)


@dataclass(frozen=True)
class ResultRecord:
    """A transcript or a summary of one recording."""

    recording_id: str
    meeting_id: str
    status: ResultStatus
    error: str | None
    body: dict[str, Any]
    created_at: datetime.datetime
    updated_at: datetime.datetime


class RecordingRecords:
    """The queries of recordings and what is made of them, on the control plane's database."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def start(self, record: RecordingRecord, audit: Sequence[AuditEntry] = ()) -> bool:
        """Record a recording that starts now; False if the meeting has one running."""
        try:
            async with self._database.transaction() as db:
                await db.execute(
                    f"INSERT INTO meeting_recordings ({_RECORDING_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    _recording_row(record),
                )
                await append_audit(db, audit)
        except sqlite3.IntegrityError:
            return False
        return True

    async def discard(self, recording_id: str) -> None:
        """Forget a recording that the media plane did not start after all."""
        async with self._database.transaction() as db:
            await db.execute("DELETE FROM meeting_recordings WHERE id = ?", (recording_id,))

    async def running(self, meeting_id: str) -> RecordingRecord | None:
        return await self._one(" WHERE r.meeting_id = ? AND r.status = 'recording'", meeting_id)

    async def get(self, recording_id: str) -> RecordingRecord | None:
        return await self._one(" WHERE r.id = ?", recording_id)

    async def of_meeting(self, meeting_id: str) -> list[RecordingRecord]:
        """The meeting's recordings, oldest first."""
        return await self._many(" WHERE r.meeting_id = ? ORDER BY r.started_at, r.id", meeting_id)

    async def finish(
        self,
        updated: RecordingRecord,
        *,
        transcript: bool,
        summary: bool,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        """Store a finished recording (inserted if unknown) and mark what is to come pending."""
        now = timestamp(updated.stopped_at or updated.started_at)
        async with self._database.transaction() as db:
            await db.execute(
                f"INSERT INTO meeting_recordings ({_RECORDING_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET status = excluded.status,"
                " reason = excluded.reason, stopped_at = excluded.stopped_at,"
                " duration_s = excluded.duration_s, encrypted = excluded.encrypted,"
                " files = excluded.files, details = excluded.details",
                _recording_row(updated),
            )
            for wanted, table in ((transcript, "transcriptions"), (summary, "summaries")):
                if wanted:
                    await db.execute(
                        f"INSERT OR IGNORE INTO meeting_{table}"
                        " (recording_id, meeting_id, status, created_at, updated_at)"
                        " VALUES (?, ?, 'pending', ?, ?)",
                        (updated.id, updated.meeting_id, now, now),
                    )
            await append_audit(db, audit)

    async def save_transcript(
        self,
        meeting_id: str,
        recording_id: str,
        transcript: Mapping[str, Any],
        now: datetime.datetime,
    ) -> bool:
        """Store a transcript the recorder made (or failed to); False if the recording is gone."""
        status = _result_status(transcript.get("status"))
        segments = transcript.get("segments") or []
        details = {
            key: transcript[key]
            for key in ("duration_s", "audio_s", "processing_s", "real_time_factor", "errors")
            if key in transcript
        }
        row = (
            recording_id,
            meeting_id,
            status,
            _error(transcript),
            str(transcript.get("language") or "") or None,
            str(transcript.get("text") or ""),
            json.dumps(segments),
            json.dumps(details),
            timestamp(now),
            timestamp(now),
        )
        return await self._save(
            "INSERT INTO meeting_transcriptions (recording_id, meeting_id, status, error,"
            " language, text, segments, details, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (recording_id) DO UPDATE SET status = excluded.status,"
            " error = excluded.error, language = excluded.language, text = excluded.text,"
            " segments = excluded.segments, details = excluded.details,"
            " updated_at = excluded.updated_at",
            row,
        )

    async def save_summary(
        self,
        meeting_id: str,
        recording_id: str,
        summary: Mapping[str, Any],
        now: datetime.datetime,
    ) -> bool:
        """Store a summary the recorder made (or failed to); False if the recording is gone."""
        body = {k: v for k, v in summary.items() if k not in ("status", "error")}
        row = (
            recording_id,
            meeting_id,
            _result_status(summary.get("status")),
            _error(summary),
            json.dumps(body),
            timestamp(now),
            timestamp(now),
        )
        return await self._save(
            "INSERT INTO meeting_summaries (recording_id, meeting_id, status, error, summary,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (recording_id) DO UPDATE SET status = excluded.status,"
            " error = excluded.error, summary = excluded.summary,"
            " updated_at = excluded.updated_at",
            row,
        )

    async def transcript(self, meeting_id: str, recording_id: str | None) -> ResultRecord | None:
        """The transcript of one recording, or of the meeting's latest one that has any."""
        query = (
            "SELECT t.recording_id, t.meeting_id, t.status, t.error, t.created_at, t.updated_at,"
            " t.language, t.text, t.segments, t.details FROM meeting_transcriptions t"
            " JOIN meeting_recordings r ON r.id = t.recording_id"
        )
        row = await self._latest(query, meeting_id, recording_id, "t")
        if row is None:
            return None
        body = {
            "language": row[6],
            "text": str(row[7]),
            "segments": json.loads(str(row[8])),
            **json.loads(str(row[9])),
        }
        return _result(row, body)

    async def summary(self, meeting_id: str, recording_id: str | None) -> ResultRecord | None:
        """The summary of one recording, or of the meeting's latest one that has any."""
        query = (
            "SELECT s.recording_id, s.meeting_id, s.status, s.error, s.created_at, s.updated_at,"
            " s.summary FROM meeting_summaries s"
            " JOIN meeting_recordings r ON r.id = s.recording_id"
        )
        row = await self._latest(query, meeting_id, recording_id, "s")
        return None if row is None else _result(row, json.loads(str(row[6])))

    async def delete(self, recording_id: str, audit: Sequence[AuditEntry] = ()) -> bool:
        """Delete a recording's rows, its transcript's and summary's; False if none."""
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "DELETE FROM meeting_recordings WHERE id = ?", (recording_id,)
            )
            await append_audit(db, audit)
            return cursor.rowcount > 0

    async def expired(self, now: datetime.datetime) -> list[RecordingRecord]:
        """Finished recordings past their retention."""
        finished = await self._many(" WHERE r.status != 'recording' AND r.retention_days > 0")
        return [r for r in finished if (r.expires_at() or now) < now]

    async def fail_unfinished(self, now: datetime.datetime) -> int:
        """After a restart: what was recording or pending then will never finish."""
        moment = timestamp(now)
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "UPDATE meeting_recordings SET status = 'failed', reason = ?, stopped_at = ?"
                " WHERE status = 'recording'",
                (RESTARTED, moment),
            )
            changed = cursor.rowcount
            for table in ("meeting_transcriptions", "meeting_summaries"):
                cursor = await db.execute(
                    f"UPDATE {table} SET status = 'failed', error = ?, updated_at = ?"
                    " WHERE status = 'pending'",
                    (RESTARTED, moment),
                )
                changed += cursor.rowcount
            return changed

    async def _save(self, statement: str, row: tuple[object, ...]) -> bool:
        try:
            async with self._database.transaction() as db:
                await db.execute(statement, row)
        except sqlite3.IntegrityError:
            # The foreign key: the recording was erased while it was being transcribed.
            return False
        return True

    async def _latest(
        self, query: str, meeting_id: str, recording_id: str | None, alias: str
    ) -> sqlite3.Row | tuple[Any, ...] | None:
        params: tuple[str, ...] = (meeting_id,)
        query += f" WHERE {alias}.meeting_id = ?"
        if recording_id is not None:
            query += f" AND {alias}.recording_id = ?"
            params += (recording_id,)
        query += " ORDER BY r.started_at DESC, r.id DESC LIMIT 1"
        async with self._database.reading() as db, db.execute(query, params) as cursor:
            return await cursor.fetchone()

    async def _one(self, where: str, *params: object) -> RecordingRecord | None:
        found = await self._many(where + " LIMIT 1", *params)
        return found[0] if found else None

    async def _many(self, where: str, *params: object) -> list[RecordingRecord]:
        async with self._database.reading() as db:
            return await _fetch(db, _WITH_RESULTS + where, params)


async def _fetch(
    db: aiosqlite.Connection, query: str, params: tuple[object, ...]
) -> list[RecordingRecord]:
    async with db.execute(query, params) as cursor:
        rows = await cursor.fetchall()
    return [_recording(row) for row in rows]


def _recording_row(record: RecordingRecord) -> tuple[object, ...]:
    return (
        record.id,
        record.meeting_id,
        record.status,
        record.reason,
        json.dumps(record.options, sort_keys=True),
        record.started_by,
        timestamp(record.started_at),
        None if record.stopped_at is None else timestamp(record.stopped_at),
        record.duration_s,
        record.retention_days,
        int(record.encrypted),
        json.dumps(record.files),
        json.dumps(record.details),
    )


def _recording(row: sqlite3.Row | tuple[Any, ...]) -> RecordingRecord:
    return RecordingRecord(
        id=str(row[0]),
        meeting_id=str(row[1]),
        status=cast(RecordingStatus, row[2]),
        reason=None if row[3] is None else str(row[3]),
        options=json.loads(str(row[4])),
        started_by=str(row[5]),
        started_at=parse_timestamp(row[6]),
        stopped_at=None if row[7] is None else parse_timestamp(row[7]),
        duration_s=None if row[8] is None else float(row[8]),
        retention_days=int(row[9]),
        encrypted=bool(row[10]),
        files=json.loads(str(row[11])),
        details=json.loads(str(row[12])),
        transcript_status=None if row[13] is None else cast(ResultStatus, row[13]),
        summary_status=None if row[14] is None else cast(ResultStatus, row[14]),
    )


def _result(row: sqlite3.Row | tuple[Any, ...], body: dict[str, Any]) -> ResultRecord:
    return ResultRecord(
        recording_id=str(row[0]),
        meeting_id=str(row[1]),
        status=cast(ResultStatus, row[2]),
        error=None if row[3] is None else str(row[3]),
        body=body,
        created_at=parse_timestamp(row[4]),
        updated_at=parse_timestamp(row[5]),
    )


def _result_status(value: object) -> ResultStatus:
    for status in RESULT_STATUSES:
        if value == status:
            return status
    return "failed"


def _error(body: Mapping[str, Any]) -> str | None:
    error = body.get("error")
    if error is None and body.get("status") not in ("completed", "pending"):
        return "the recorder did not say what went wrong"
    return None if error is None else str(error)[:1000]
