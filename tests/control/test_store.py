"""The SQLite store: versioned migrations, keyset paging, cascades (real SQLite files)."""

from __future__ import annotations

import dataclasses
import datetime
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from control.store import (
    MIGRATIONS,
    AdmissionSnapshot,
    Meeting,
    Migration,
    Participant,
    Settlement,
    SqliteStore,
)

T0 = datetime.datetime(2030, 1, 1, 9, 0, tzinfo=datetime.UTC)


def meeting(meeting_id: str, created_at: datetime.datetime = T0) -> Meeting:
    return Meeting(
        id=meeting_id,
        title=f"Meeting {meeting_id}",
        description="",
        host_identity=None,
        scheduled_start=None,
        status="scheduled",
        created_at=created_at,
        updated_at=created_at,
    )


def participant(participant_id: str, meeting_id: str) -> Participant:
    return Participant(
        id=participant_id,
        meeting_id=meeting_id,
        identity=f"user:{participant_id}",
        name="Ada",
        email=None,
        role="participant",
        joined_at=T0,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "townhall.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


def tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


async def test_migrations_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "townhall.sqlite3"
    for _ in range(2):
        store = SqliteStore(path)
        await store.open()
        assert await store.schema_version() == MIGRATIONS[-1].version
        await store.close()
    with closing(sqlite3.connect(path)) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations")]
    assert versions == [migration.version for migration in MIGRATIONS]
    assert {"meetings", "participants", "schema_migrations"} <= tables(path)


async def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "townhall.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.create_meeting(meeting("kept"))
    await store.close()

    broken = Migration(
        MIGRATIONS[-1].version + 1,
        "half a migration",
        ("CREATE TABLE half_done (id TEXT)", "THIS IS NOT SQL"),
    )
    with pytest.raises(sqlite3.OperationalError):
        await SqliteStore(path, (*MIGRATIONS, broken)).open()

    assert "half_done" not in tables(path)
    store = SqliteStore(path)
    await store.open()
    assert await store.schema_version() == MIGRATIONS[-1].version
    assert await store.get_meeting("kept") is not None
    await store.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "townhall.sqlite3"
    newer = Migration(MIGRATIONS[-1].version + 1, "from the future", ("CREATE TABLE f (id TEXT)",))
    store = SqliteStore(path, (*MIGRATIONS, newer))
    await store.open()
    await store.close()
    with pytest.raises(RuntimeError, match="newer than this Townhall"):
        await SqliteStore(path).open()


async def test_round_trip(store: SqliteStore) -> None:
    original = meeting("abc")
    await store.create_meeting(original)
    assert await store.get_meeting("abc") == original
    assert await store.get_meeting("nope") is None


async def test_list_is_newest_first_by_keyset(store: SqliteStore) -> None:
    # Two meetings share a timestamp: the id breaks the tie, so no row is skipped.
    stamps = [T0, T0 + datetime.timedelta(seconds=1), T0 + datetime.timedelta(seconds=1)]
    for meeting_id, stamp in zip(["a", "b", "c"], stamps, strict=True):
        await store.create_meeting(meeting(meeting_id, stamp))
    first = await store.list_meetings(2, None)
    assert [m.id for m in first] == ["c", "b"]
    rest = await store.list_meetings(2, (first[-1].created_at, first[-1].id))
    assert [m.id for m in rest] == ["a"]


async def test_update_is_atomic_and_may_refuse(store: SqliteStore) -> None:
    await store.create_meeting(meeting("abc"))

    def refuse(current: Meeting) -> Meeting:
        raise ValueError("no")

    with pytest.raises(ValueError):
        await store.update_meeting("abc", refuse)
    assert await store.get_meeting("abc") == meeting("abc")
    assert await store.update_meeting("nope", refuse) is None


async def test_delete_removes_participants(store: SqliteStore) -> None:
    await store.create_meeting(meeting("abc"))
    assert await store.add_participant(participant("p1", "abc"))
    assert [p.id for p in await store.list_participants("abc")] == ["p1"]
    assert await store.delete_meeting("abc")
    assert await store.list_participants("abc") == []
    assert not await store.delete_meeting("abc")


async def test_participant_of_a_missing_meeting_is_refused(store: SqliteStore) -> None:
    assert not await store.add_participant(participant("p1", "gone"))


async def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "townhall.sqlite3"
    old = SqliteStore(path, MIGRATIONS[:1])
    await old.open()
    await old.create_meeting(meeting("abc"))
    async with old.transaction() as db:
        await db.execute(
            "INSERT INTO participants (id, meeting_id, identity, name, email, role, joined_at)"
            " VALUES ('p1', 'abc', 'user:p1', 'Ada', NULL, 'participant', ?)",
            ("2030-01-01T09:00:00.000000Z",),
        )
    await old.close()
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.schema_version() == MIGRATIONS[-1].version
        [kept] = await store.list_participants("abc")
        assert (kept.id, kept.status, kept.connected) == ("p1", "joined", False)
    finally:
        await store.close()
    assert {
        "meeting_policies",
        "invites",
        "chat_messages",
        "audit_log",
        "breakout_sessions",
        "breakout_rooms",
        "breakout_assignments",
    } <= tables(path)


async def test_a_refused_admission_writes_nothing(store: SqliteStore) -> None:
    await store.create_meeting(meeting("abc"))

    def refuse(snapshot: AdmissionSnapshot) -> Settlement:
        raise ValueError("no")

    with pytest.raises(ValueError):
        await store.admit("abc", None, T0, refuse)
    assert await store.list_participants("abc") == []
    assert await store.admit("gone", None, T0, refuse) is None


async def test_a_place_is_held_while_connected_or_until_the_token_expires() -> None:
    later = T0 + datetime.timedelta(minutes=10)
    waiting = dataclasses.replace(participant("p", "m"), status="waiting")
    holding = dataclasses.replace(participant("p", "m"), token_expires_at=later)
    assert holding.holds_place(T0)
    assert not holding.holds_place(later)
    assert dataclasses.replace(holding, connected=True).holds_place(later)
    assert not waiting.holds_place(T0)
