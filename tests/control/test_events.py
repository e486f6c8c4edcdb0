"""ControlEvents as the SFU calls them: who holds a place, who is sent away on connecting."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.control.conftest import Hall
from townhall.contract import JoinRefused, RecordingRefused


def api(meeting_id: str, suffix: str = "") -> str:
    return f"/api/v1/meetings/{meeting_id}{suffix}"


def standing(tmp_path: Path, participant_id: str) -> tuple[str, int]:
    with closing(sqlite3.connect(tmp_path / "data" / "townhall.sqlite3")) as db:
        row = db.execute(
            "SELECT status, connected FROM participants WHERE id = ?", (participant_id,)
        ).fetchone()
    return str(row[0]), int(row[1])


async def test_connect_and_disconnect_are_recorded(hall: Hall, tmp_path: Path) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id)
    await hall.connect(ada)
    assert standing(tmp_path, ada["participant_id"]) == ("joined", 1)
    await hall.disconnect(ada, "network lost")
    assert standing(tmp_path, ada["participant_id"]) == ("left", 0)
    # Reconnecting with the same (still valid) token: in again.
    await hall.connect(ada)
    assert standing(tmp_path, ada["participant_id"]) == ("joined", 1)
    assert hall.media.named("remove_participant") == []


async def test_the_end_of_a_replaced_connection_is_ignored(hall: Hall, tmp_path: Path) -> None:
    # The SFU reports the old connection's end after the new one began.
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id)
    await hall.connect(ada)
    await hall.events.participant_disconnected(
        meeting_id, ada["participant_id"], "replaced by a new connection"
    )
    assert standing(tmp_path, ada["participant_id"]) == ("joined", 1)


async def test_someone_who_should_not_be_there_is_refused_before_joining(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    removed = await hall.join(meeting_id, "Removed")
    await hall.call("POST", api(meeting_id, f"/participants/{removed['participant_id']}/remove"))
    with pytest.raises(JoinRefused, match="removed by the host"):
        await hall.connect(removed)
    ended_meeting = await hall.meeting()
    late = await hall.join(ended_meeting, "Late")
    await hall.call("POST", api(ended_meeting, "/end"))
    with pytest.raises(JoinRefused, match="meeting ended"):
        await hall.connect(late)
    with pytest.raises(JoinRefused, match="this meeting does not exist"):
        await hall.events.participant_connected("nosuchmeeting", "nobody")


async def test_a_waiter_with_a_forged_place_is_refused(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True)
    waiting = await hall.guest(meeting_id)
    with pytest.raises(JoinRefused):
        await hall.events.participant_connected(meeting_id, waiting["participant_id"])


async def test_recording_is_for_those_the_policy_allows(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    host = await hall.join(meeting_id, "Host", role="host")
    ada = await hall.join(meeting_id, "Ada")
    with pytest.raises(RecordingRefused, match="may not record"):
        await hall.events.recording_requested(meeting_id, ada["participant_id"], "start")
    await hall.events.recording_requested(meeting_id, host["participant_id"], "start")
    [(_, recording_id, _)] = hall.media.named("start_recording")
    with pytest.raises(RecordingRefused, match="already"):
        await hall.events.recording_requested(meeting_id, host["participant_id"], "start")
    await hall.call("PATCH", api(meeting_id, "/policy"), {"recording_permissions": "all"})
    await hall.events.recording_requested(meeting_id, ada["participant_id"], "stop")
    entries = [(e["action"], e["target"]) for e in await hall.audit(meeting_id)]
    assert ("recording.start", recording_id) in entries
    assert ("recording.stop", recording_id) in entries
    await hall.call("PATCH", api(meeting_id, "/policy"), {"recording_permissions": "none"})
    with pytest.raises(RecordingRefused):
        await hall.events.recording_requested(meeting_id, host["participant_id"], "start")
