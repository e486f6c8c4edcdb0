"""Recorded files: signed expiring download links, encryption at rest, erasure, retention.

Real files in a real storage under tmp_path; a fake clock moves time for link
expiry and retention (``tests/control/recording_media.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.control.recording_media import KEY, Studio, open_studio


@pytest.fixture
async def studio(tmp_path: Path) -> AsyncIterator[Studio]:
    async for running in open_studio(tmp_path):
        yield running


def api(meeting_id: str, suffix: str = "") -> str:
    return f"/api/v1/meetings/{meeting_id}{suffix}"


def local(url: str) -> str:
    """A download URL (absolute, with the public URL) as a path for the test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def download(studio: Studio, url: str) -> tuple[int, bytes, Any]:
    response = await studio.client.get(url)
    body = await response.read()
    return response.status, body, response


async def kept(studio: Studio, meeting_id: str) -> set[str]:
    listed = await studio.call("GET", api(meeting_id, "/recordings"))
    return {recording["id"] for recording in listed["recordings"]}


async def recorded(studio: Studio, **options: Any) -> tuple[str, dict[str, Any]]:
    meeting_id, host = await studio.connected_meeting()
    await studio.record(meeting_id, host["control_token"], **options)
    listed = await studio.call("GET", api(meeting_id, "/recordings"))
    return meeting_id, listed["recordings"][0]


async def test_a_signed_link_downloads_the_file_without_other_credentials(
    studio: Studio,
) -> None:
    _, recording = await recorded(studio)
    audio = recording["files"][0]
    status, body, response = await download(studio, local(audio["download_url"]))
    assert status == 200, body
    assert hashlib.sha256(body).hexdigest() == audio["sha256"] and len(body) == audio["bytes"]
    assert response.content_type == "audio/ogg"
    assert response.headers["Content-Disposition"] == 'attachment; filename="01-ada-microphone.ogg"'
    assert "no-store" in response.headers["Cache-Control"]
    video = recording["files"][1]
    status, body, response = await download(studio, local(video["download_url"]))
    assert (status, response.content_type) == (200, "video/webm")


async def test_a_tampered_link_is_403_and_an_expired_one_410(studio: Studio) -> None:
    _, recording = await recorded(studio)
    audio, video = recording["files"]
    url = local(audio["download_url"])
    path, query = url.split("?")
    params = {k: v[0] for k, v in parse_qs(query).items()}

    def link(**changes: str) -> str:
        return f"{path}?{urlencode({**params, **changes})}"

    forged = "0" * 64
    later = str(int(params["expires"]) + 3600)
    for tampered in (
        link(sig=forged),
        link(expires=later),  # a longer life with the old signature
        link(sig=params["sig"][:-1]),
        link(sig="é" * 64),
        f"{path}?expires={params['expires']}",  # no signature
        path,
        # The signature of one file does not open another.
        f"{local(video['download_url']).split('?')[0]}?{query}",
    ):
        status, body, _ = await download(studio, tampered)
        assert status == 403, (tampered, body)
        assert b"invalid_signature" in body
    status, body, _ = await download(studio, f"{url}&extra=1")
    assert status == 400

    studio.clock.advance(seconds=3601)
    status, body, _ = await download(studio, url)
    assert status == 410 and b"link_expired" in body
    # Listing again hands out fresh links.
    listed = await studio.call("GET", api(recording["meeting_id"], "/recordings"))
    fresh = listed["recordings"][0]["files"][0]["download_url"]
    status, _, _ = await download(studio, local(fresh))
    assert status == 200


async def test_an_encrypted_recording_downloads_decrypted(tmp_path: Path) -> None:
    async for studio in open_studio(tmp_path, key=KEY):
        _, recording = await recorded(studio, encryption_enabled=True)
        assert recording["encrypted"] and recording["options"]["encryption_enabled"]
        audio = recording["files"][0]
        stored = next((tmp_path / "recordings").rglob("01-ada-microphone.ogg")).read_bytes()
        status, body, _ = await download(studio, local(audio["download_url"]))
        assert status == 200
        assert hashlib.sha256(body).hexdigest() == audio["sha256"]
        assert hashlib.sha256(stored).hexdigest() != audio["sha256"]  # ciphertext on disk
        assert len(stored) > len(body)


async def test_erasure_removes_files_transcript_and_summary_and_is_audited(
    studio: Studio, tmp_path: Path
) -> None:
    meeting_id, recording = await recorded(studio)
    recording_id = recording["id"]
    await studio.results.transcript_ready(
        meeting_id, recording_id, {"status": "completed", "segments": [], "text": ""}
    )
    await studio.results.summary_ready(meeting_id, recording_id, {"status": "completed"})
    link = local(recording["files"][0]["download_url"])
    folder = tmp_path / "recordings" / meeting_id / recording_id
    assert len(list(folder.iterdir())) == 3

    await studio.call("DELETE", api(meeting_id, f"/recordings/{recording_id}"), status=204)
    assert not folder.exists()
    assert (await studio.call("GET", api(meeting_id, "/recordings")))["recordings"] == []
    for what in ("/transcript", "/summary"):
        status, _ = await studio.error("GET", api(meeting_id, what))
        assert status == 404
    status, _, _ = await download(studio, link)
    assert status == 404
    [entry] = [e for e in await studio.audit(meeting_id) if e["action"] == "recording.erase"]
    assert (entry["actor"], entry["target"]) == ("admin", recording_id)
    assert entry["details"]["files"] == 3 and entry["details"]["bytes"] > 80_000
    assert entry["details"]["transcript"] and entry["details"]["summary"]
    status, error = await studio.error("DELETE", api(meeting_id, f"/recordings/{recording_id}"))
    assert (status, error["code"]) == (404, "recording_not_found")
    # A transcript the recorder finishes after the erasure is dropped, not resurrected.
    await studio.results.transcript_ready(
        meeting_id, recording_id, {"status": "completed", "segments": [], "text": ""}
    )
    status, _ = await studio.error("GET", api(meeting_id, "/transcript"))
    assert status == 404


async def test_a_running_recording_is_not_erased(studio: Studio) -> None:
    meeting_id, _ = await studio.connected_meeting()
    started = await studio.call("POST", api(meeting_id, "/recording/start"), status=201)
    status, error = await studio.error("DELETE", api(meeting_id, f"/recordings/{started['id']}"))
    assert (status, error["code"]) == (409, "already_recording")
    other = await studio.meeting()
    status, _ = await studio.error("DELETE", api(other, f"/recordings/{started['id']}"))
    assert status == 404


async def test_deleting_a_meeting_erases_its_recordings(studio: Studio, tmp_path: Path) -> None:
    meeting_id, recording = await recorded(studio)
    await studio.call("DELETE", api(meeting_id), status=204)
    assert not (tmp_path / "recordings" / meeting_id).exists()
    assert await studio.recordings.records.get(recording["id"]) is None
    entries = [e for e in await studio.audit(meeting_id) if e["action"] == "recording.erase"]
    assert entries and entries[0]["reason"] == "the meeting was deleted"


async def test_retention_deletes_what_is_past_its_days(studio: Studio, tmp_path: Path) -> None:
    meeting_id, host = await studio.connected_meeting()
    token = host["control_token"]
    one_day = await studio.record(meeting_id, token, retention_days=1)
    default = await studio.record(meeting_id, token)  # the server's 30 days
    forever = await studio.record(meeting_id, token, retention_days=0)
    for recording in (one_day, default, forever):
        await studio.results.transcript_ready(
            meeting_id, recording["id"], {"status": "completed", "segments": [], "text": ""}
        )
    assert await studio.recordings.apply_retention() == 0

    studio.clock.advance(days=1, seconds=1)
    assert await studio.recordings.apply_retention() == 1
    assert await kept(studio, meeting_id) == {default["id"], forever["id"]}
    assert not (tmp_path / "recordings" / meeting_id / one_day["id"]).exists()
    status, _ = await studio.error(
        "GET", api(meeting_id, f"/transcript?recording_id={one_day['id']}")
    )
    assert status == 404

    studio.clock.advance(days=30)
    assert await studio.recordings.apply_retention() == 1
    assert await kept(studio, meeting_id) == {forever["id"]}
    expired = [e for e in await studio.audit(meeting_id) if e["action"] == "recording.expire"]
    assert [(e["actor"], e["target"]) for e in expired] == [
        ("system", one_day["id"]),
        ("system", default["id"]),
    ]
    assert "1 days" in expired[0]["reason"] and expired[0]["details"]["files"] == 3


async def test_retention_removes_stored_recordings_nobody_keeps_a_row_for(
    studio: Studio, tmp_path: Path
) -> None:
    # Files whose row is gone (a database restored from a backup, say).
    meeting_id, recording = await recorded(studio, retention_days=2)
    async with studio.recordings.records._database.transaction() as db:
        await db.execute("DELETE FROM meeting_recordings")
    studio.clock.advance(days=3)
    assert await studio.recordings.apply_retention() == 1
    assert not (tmp_path / "recordings" / meeting_id).exists()
    [entry] = [e for e in await studio.audit(meeting_id) if e["action"] == "recording.expire"]
    assert entry["target"] == recording["id"] and "storage" in entry["reason"]


async def test_the_retention_job_runs_every_interval(tmp_path: Path) -> None:
    async for studio in open_studio(tmp_path, retention_interval_s=0.05):
        meeting_id, recording = await recorded(studio, retention_days=1)
        studio.clock.advance(days=2)
        deadline = time.monotonic() + 5
        while await studio.recordings.records.get(recording["id"]) is not None:
            assert time.monotonic() < deadline, "the retention job did not run"
            await asyncio.sleep(0.02)
        assert not (tmp_path / "recordings" / meeting_id / recording["id"]).exists()
