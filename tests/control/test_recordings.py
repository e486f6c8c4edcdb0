"""Recordings over REST: start and stop by policy, the 409s, the list, transcripts, summaries.

The control plane runs for real (aiohttp test server, SQLite file); the media
plane is the fake at the seam, with a recorder that writes real files into a
real storage and reports them (``tests/control/recording_media.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from control.openapi import openapi_document
from control.recording_options import RecordingRequest
from tests.control.conftest import ADMIN, PUBLIC_URL
from tests.control.recording_media import Studio, open_studio
from townhall.contract import RecordingRefused

SCHEMAS = openapi_document(PUBLIC_URL)["components"]["schemas"]
SEGMENTS = [
    {"speaker": "Ada", "participant_id": "p-ada", "start": 0.5, "end": 2.0, "text": "Hello all."},
    {"speaker": "Bob", "participant_id": "p-bob", "start": 3.0, "end": 4.5, "text": "Hi Ada."},
]


@pytest.fixture
async def studio(tmp_path: Path) -> AsyncIterator[Studio]:
    async for running in open_studio(tmp_path):
        yield running


def api(meeting_id: str, suffix: str = "") -> str:
    return f"/api/v1/meetings/{meeting_id}{suffix}"


def assert_matches_schema(body: dict[str, Any], name: str) -> None:
    """The body has exactly the fields the OpenAPI schema lists (all required here)."""
    schema = SCHEMAS[name]
    assert set(body) == set(schema["properties"]) == set(schema["required"]), (name, set(body))


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.01)


async def test_a_host_records_and_the_recording_is_listed_with_its_files(studio: Studio) -> None:
    meeting_id, host = await studio.connected_meeting()
    token = host["control_token"]
    started = await studio.call(
        "POST",
        api(meeting_id, "/recording/start"),
        {"format": "mkv", "mixed_audio": True, "retention_days": 7, "language": "en"},
        token=token,
        status=201,
    )
    assert started["status"] == "recording" and started["files"] == []
    assert started["started_by"] == f"participant:{host['participant_id']}"
    [(_, recording_id, options)] = studio.media.named("start_recording")
    assert recording_id == started["id"]
    # Every key explicit for the recorder: what was asked, and the defaults for the rest.
    assert options == {
        "include_audio": True,
        "include_video": True,
        "include_screen_share": True,
        "format": "mkv",
        "auto_transcribe": True,
        "generate_summary": True,
        "language": "en",
        "retention_days": 7,
        "encryption_enabled": False,
        "mixed_audio": True,
        "live_captions": False,
    }
    assert started["options"] == options

    stopped = await studio.call("POST", api(meeting_id, "/recording/stop"), token=token)
    assert stopped["status"] == "completed" and stopped["reason"] is None
    assert stopped["duration_s"] == 10.0
    assert [f["id"] for f in stopped["files"]] == ["01-ada-microphone.ogg", "02-bob-camera.webm"]

    listed = await studio.call("GET", api(meeting_id, "/recordings"), token=token)
    assert_matches_schema(listed, "RecordingList")
    [recording] = listed["recordings"]
    assert_matches_schema(recording, "Recording")
    for entry in recording["files"]:
        assert_matches_schema(entry, "RecordingFile")
    assert recording["id"] == recording_id
    assert recording["transcript_status"] == recording["summary_status"] == "pending"
    assert recording["retention_days"] == 7 and recording["expires_at"]
    audio, video = recording["files"]
    assert (audio["kind"], audio["participant_id"]) == ("audio", "p-ada")
    assert audio["start_offset_s"] == 0
    assert (video["kind"], video["start_offset_s"], video["duration_s"]) == ("video", 2.5, 7.5)
    assert audio["bytes"] == 40_001 and len(audio["sha256"]) == 64
    assert audio["download_url"].startswith(
        f"https://meet.example.test/api/v1/recordings/{recording_id}/files/01-ada-microphone.ogg?"
    )

    actions = [(e["action"], e["actor"]) for e in await studio.audit(meeting_id)]
    host_actor = f"participant:{host['participant_id']}"
    assert ("recording.start", host_actor) in actions
    assert ("recording.stop", host_actor) in actions
    assert ("recording.finished", "system") in actions


async def test_one_recording_at_a_time_and_only_with_someone_connected(studio: Studio) -> None:
    meeting_id = await studio.meeting()
    _, error = await studio.error("POST", api(meeting_id, "/recording/start"))
    assert error["code"] == "not_connected"
    assert studio.media.named("start_recording") == []

    host = await studio.join(meeting_id, "Host", role="host")
    await studio.connect(host)
    started = await studio.call("POST", api(meeting_id, "/recording/start"), status=201)
    status, error = await studio.error("POST", api(meeting_id, "/recording/start"))
    assert (status, error["code"]) == (409, "already_recording")
    assert error["details"]["recording_id"] == started["id"]
    await studio.call("POST", api(meeting_id, "/recording/stop"))
    status, error = await studio.error("POST", api(meeting_id, "/recording/stop"))
    assert (status, error["code"]) == (409, "not_recording")
    # Stopped: another may start.
    await studio.call("POST", api(meeting_id, "/recording/start"), status=201)


async def test_the_media_plane_refusing_leaves_no_recording_behind(studio: Studio) -> None:
    meeting_id, _ = await studio.connected_meeting()
    studio.media.recordings[meeting_id] = "one-the-control-plane-does-not-know"
    status, error = await studio.error("POST", api(meeting_id, "/recording/start"))
    assert (status, error["code"]) == (409, "conflict")
    assert (await studio.call("GET", api(meeting_id, "/recordings")))["recordings"] == []


async def test_who_may_record_follows_the_policy(studio: Studio) -> None:
    meeting_id, host = await studio.connected_meeting()
    ada = await studio.join(meeting_id, "Ada")
    start, stop = api(meeting_id, "/recording/start"), api(meeting_id, "/recording/stop")
    status, error = await studio.error("POST", start, token=ada["control_token"])
    assert (status, error["details"]["rule"]) == (403, "recording_permissions")
    await studio.call("PATCH", api(meeting_id, "/policy"), {"recording_permissions": "all"})
    await studio.call("POST", start, token=ada["control_token"], status=201)
    await studio.call("PATCH", api(meeting_id, "/policy"), {"recording_permissions": "host"})
    status, _ = await studio.error("POST", stop, token=ada["control_token"])
    assert status == 403
    await studio.call("POST", stop, token=host["control_token"])
    await studio.call("PATCH", api(meeting_id, "/policy"), {"recording_permissions": "none"})
    for token in (host["control_token"], ADMIN):
        status, error = await studio.error("POST", start, token=token)
        assert (status, error["code"]) == (403, "forbidden")
    # Only hosts list and erase recordings.
    listing = api(meeting_id, "/recordings")
    status, _ = await studio.error("GET", listing, token=ada["control_token"])
    assert status == 403


async def test_an_ended_meeting_is_not_recorded(studio: Studio) -> None:
    meeting_id, _ = await studio.connected_meeting()
    await studio.call("POST", api(meeting_id, "/end"))
    studio.media.connect(meeting_id, "someone")
    status, error = await studio.error("POST", api(meeting_id, "/recording/start"))
    assert (status, error["code"]) == (409, "meeting_ended")
    status, error = await studio.error("POST", api("nosuchmeeting", "/recording/start"))
    assert (status, error["code"]) == (404, "meeting_not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"format": "avi"}, "format"),
        ({"retention_days": -1}, "retention_days"),
        ({"retention_days": 1.5}, "retention_days"),
        ({"language": "English please"}, "language"),
        ({"auto_transcribe": "yes"}, "auto_transcribe"),
        ({"include_audio": False, "include_video": False, "include_screen_share": False},
         "include_audio"),
        # No recorder.encryption_key is configured here.
        ({"encryption_enabled": True}, "encryption_enabled"),
        ({"watermark": True}, "watermark"),
    ],
)  # fmt: skip
async def test_a_bad_configuration_is_refused_naming_the_field(
    studio: Studio, body: dict[str, Any], field: str
) -> None:
    meeting_id, _ = await studio.connected_meeting()
    status, error = await studio.error("POST", api(meeting_id, "/recording/start"), body)
    assert status == 400 and error["details"]["field"] == field, error
    assert studio.media.named("start_recording") == []


async def test_the_transcript_as_json_webvtt_and_srt(studio: Studio) -> None:
    meeting_id, host = await studio.connected_meeting()
    status, error = await studio.error("GET", api(meeting_id, "/transcript"))
    assert (status, error["code"]) == (404, "not_found")
    recording = await studio.record(meeting_id, host["control_token"])
    pending = await studio.call("GET", api(meeting_id, "/transcript"))
    assert (pending["status"], pending["segments"]) == ("pending", [])
    status, error = await studio.error("GET", api(meeting_id, "/transcript?format=vtt"))
    assert (status, error["code"]) == (409, "not_ready")

    transcript = {
        "status": "completed",
        "segments": SEGMENTS,
        "text": "Ada: Hello all.\nBob: Hi Ada.",
        "language": "en",
        "duration_s": 4.5,
        "real_time_factor": 0.05,
    }
    await studio.results.transcript_ready(meeting_id, recording["id"], transcript)
    ada = await studio.join(meeting_id, "Ada")
    body = await studio.call("GET", api(meeting_id, "/transcript"), token=ada["control_token"])
    assert_matches_schema(body, "Transcript")
    for segment in body["segments"]:
        assert_matches_schema(segment, "TranscriptSegment")
    assert body["status"] == "completed" and body["error"] is None
    assert body["segments"] == SEGMENTS and body["text"] == transcript["text"]
    assert (body["recording_id"], body["language"]) == (recording["id"], "en")

    response = await studio.client.get(
        api(meeting_id, f"/transcript?format=vtt&recording_id={recording['id']}"),
        headers={"Authorization": f"Bearer {ada['control_token']}"},
    )
    assert response.status == 200 and response.content_type == "text/vtt"
    assert "attachment" in response.headers["Content-Disposition"]
    vtt = await response.text()
    assert vtt.startswith("WEBVTT\n") and "00:00:00.500 --> 00:00:02.000\n<v Ada>Hello all." in vtt
    response = await studio.client.get(
        api(meeting_id, "/transcript?format=srt"), headers={"Authorization": "Bearer x"}
    )
    assert response.status == 401
    response = await studio.client.get(
        api(meeting_id, "/transcript?format=srt"),
        headers={"Authorization": f"Bearer {ada['control_token']}"},
    )
    srt = await response.text()
    assert srt.startswith("1\n00:00:00,500 --> 00:00:02,000\nAda: Hello all.\n")

    status, error = await studio.error("GET", api(meeting_id, "/transcript?format=pdf"))
    assert (status, error["details"]["parameter"]) == (400, "format")
    status, error = await studio.error("GET", api(meeting_id, "/transcript?recording_id=nope"))
    assert status == 404


async def test_the_latest_transcript_and_a_failed_one(studio: Studio) -> None:
    meeting_id, host = await studio.connected_meeting()
    first = await studio.record(meeting_id, host["control_token"])
    await studio.results.transcript_ready(
        meeting_id, first["id"], {"status": "completed", "segments": SEGMENTS, "text": "x"}
    )
    studio.clock.advance(minutes=5)
    second = await studio.record(meeting_id, host["control_token"])
    await studio.results.transcript_ready(
        meeting_id, second["id"], {"status": "failed", "error": "no participant audio"}
    )
    latest = await studio.call("GET", api(meeting_id, "/transcript"))
    assert (latest["recording_id"], latest["status"]) == (second["id"], "failed")
    assert latest["error"] == "no participant audio"
    older = await studio.call("GET", api(meeting_id, f"/transcript?recording_id={first['id']}"))
    assert older["segments"] == SEGMENTS


async def test_the_summary(studio: Studio) -> None:
    meeting_id, host = await studio.connected_meeting()
    recording = await studio.record(meeting_id, host["control_token"])
    assert (await studio.call("GET", api(meeting_id, "/summary")))["status"] == "pending"
    summary = {
        "status": "completed",
        "error": None,
        "key_points": ["The site ships in May."],
        "decisions": ["We ship in May."],
        "action_items": [{"text": "Bob sends the report", "owner": "Bob", "due": "2030-05-03"}],
        "generator": "extractive",
    }
    await studio.results.summary_ready(meeting_id, recording["id"], summary)
    body = await studio.call("GET", api(meeting_id, f"/summary?recording_id={recording['id']}"))
    assert_matches_schema(body, "Summary")
    assert body["status"] == "completed" and body["error"] is None
    assert body["summary"]["action_items"][0]["owner"] == "Bob"
    assert "status" not in body["summary"]
    listed = await studio.call("GET", api(meeting_id, "/recordings"))
    assert listed["recordings"][0]["summary_status"] == "completed"


async def test_no_transcript_or_summary_unless_asked(studio: Studio) -> None:
    meeting_id, host = await studio.connected_meeting()
    await studio.record(
        meeting_id, host["control_token"], auto_transcribe=False, generate_summary=False
    )
    [recording] = (await studio.call("GET", api(meeting_id, "/recordings")))["recordings"]
    assert recording["transcript_status"] is None and recording["summary_status"] is None
    status, _ = await studio.error("GET", api(meeting_id, "/summary"))
    assert status == 404


async def test_a_failed_recording_is_kept_announced_and_stopped(studio: Studio) -> None:
    meeting_id, host = await studio.connected_meeting()
    started = await studio.call("POST", api(meeting_id, "/recording/start"), status=201)
    # The disk fills mid-meeting: the recorder reports before anyone stops it.
    studio.media.outcome = ("failed", "disk full (ENOSPC)")
    result = studio.media.write_files(meeting_id, started["id"])
    await studio.results.recording_finished(meeting_id, started["id"], result)
    await eventually(lambda: bool(studio.media.named("stop_recording")))
    [recording] = (await studio.call("GET", api(meeting_id, "/recordings")))["recordings"]
    assert (recording["status"], recording["reason"]) == ("failed", "disk full (ENOSPC)")
    assert len(recording["files"]) == 2  # playable up to the failure
    [(_, frame, audience)] = studio.media.sent("recording")
    assert frame == {
        "type": "recording",
        "state": "failed",
        "recording_id": started["id"],
        "reason": "disk full (ENOSPC)",
    }
    assert audience == "all"
    assert studio.media.named("stop_recording") == [(meeting_id,)]
    entries = [e for e in await studio.audit(meeting_id) if e["action"] == "recording.finished"]
    assert entries[0]["reason"] == "disk full (ENOSPC)"


async def test_a_host_records_over_signaling_with_the_default_configuration(
    studio: Studio,
) -> None:
    meeting_id, host = await studio.connected_meeting()
    await studio.events.recording_requested(meeting_id, host["participant_id"], "start")
    [(_, recording_id, options)] = studio.media.named("start_recording")
    assert options["auto_transcribe"] and options["generate_summary"]
    assert options["retention_days"] == 30 and not options["live_captions"]
    with pytest.raises(RecordingRefused, match="already"):
        await studio.events.recording_requested(meeting_id, host["participant_id"], "start")
    await studio.events.recording_requested(meeting_id, host["participant_id"], "stop")
    with pytest.raises(RecordingRefused, match="not being recorded"):
        await studio.events.recording_requested(meeting_id, host["participant_id"], "stop")
    [recording] = (await studio.call("GET", api(meeting_id, "/recordings")))["recordings"]
    assert (recording["id"], recording["status"]) == (recording_id, "completed")


async def test_a_restart_fails_what_was_under_way(studio: Studio) -> None:
    meeting_id, host = await studio.connected_meeting()
    finished = await studio.record(meeting_id, host["control_token"])
    running = await studio.call("POST", api(meeting_id, "/recording/start"), status=201)
    await studio.recordings.recover()
    by_id = {
        r["id"]: r for r in (await studio.call("GET", api(meeting_id, "/recordings")))["recordings"]
    }
    assert by_id[running["id"]]["status"] == "failed"
    assert "restarted" in by_id[running["id"]]["reason"]
    assert by_id[finished["id"]]["status"] == "completed"
    assert by_id[finished["id"]]["transcript_status"] == "failed"


def test_the_documented_configuration_is_the_parsed_one() -> None:
    documented = set(SCHEMAS["RecordingStart"]["properties"])
    assert documented == {f.name for f in dataclasses.fields(RecordingRequest)}
