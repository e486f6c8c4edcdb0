"""Retention: old recordings are deleted (by manifest age), erasure on request, an audit trail."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
from pathlib import Path
from typing import Any

import pytest

from recorder.config import RecorderConfig
from recorder.retention import DeletedRecording, apply_retention, erase_recording, run_retention
from recorder.session import Recorder
from recorder.storage import LocalStorage
from tests.recorder.rtp_media import T0, feed, opus_stream
from tests.recorder.test_session import Events, audio

NOW = datetime.datetime(2025, 6, 30, 12, 0, tzinfo=datetime.UTC)
KEY = bytes(range(32))


def days_ago(days: float) -> str:
    return (NOW - datetime.timedelta(days=days)).isoformat()


def add_recording(
    storage: LocalStorage,
    meeting: str,
    recording: str,
    started_at: str,
    encrypt: bool = False,
    **manifest: Any,
) -> None:
    folder = f"{meeting}/{recording}"
    storage.put(f"{folder}/01-alice-microphone.ogg", b"x" * 1000, encrypt=encrypt)
    body = {"recording_id": recording, "meeting_id": meeting, "started_at": started_at, **manifest}
    storage.put(f"{folder}/manifest.json", json.dumps(body).encode(), encrypt=encrypt)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "recordings", key=KEY)


def test_recordings_older_than_the_default_are_deleted(storage: LocalStorage) -> None:
    add_recording(storage, "m1", "old", days_ago(31))
    add_recording(storage, "m1", "new", days_ago(29))
    size = sum(o.size for o in storage.list("m1/old"))
    deleted = apply_retention(storage, 30, NOW)
    assert deleted == [
        DeletedRecording(
            folder="m1/old",
            meeting_id="m1",
            recording_id="old",
            started_at=days_ago(31),
            reason="expired",
            files=("m1/old/01-alice-microphone.ogg", "m1/old/manifest.json"),
            bytes=size,
        )
    ]
    assert size > 1000
    assert [o.name.split("/")[1] for o in storage.list()] == ["new", "new"]


def test_a_recording_keeps_its_own_retention(storage: LocalStorage) -> None:
    add_recording(storage, "m1", "short", days_ago(2), retention_days=1)
    add_recording(storage, "m1", "forever", days_ago(4000), retention_days=0)
    add_recording(storage, "m2", "default", days_ago(400))
    deleted = apply_retention(storage, 365, NOW)
    assert sorted(d.folder for d in deleted) == ["m1/short", "m2/default"]
    assert [o.name for o in storage.list()][0].startswith("m1/forever/")
    assert not (storage.root / "m2").exists()


def test_default_zero_keeps_everything_without_a_limit(storage: LocalStorage) -> None:
    add_recording(storage, "m1", "ancient", days_ago(10_000))
    assert apply_retention(storage, 0, NOW) == []


def test_encrypted_manifests_are_read_with_the_key(storage: LocalStorage) -> None:
    add_recording(storage, "m1", "sealed", days_ago(40), encrypt=True)
    assert [d.recording_id for d in apply_retention(storage, 30, NOW)] == ["sealed"]


def test_a_folder_without_manifest_goes_only_when_long_untouched(storage: LocalStorage) -> None:
    storage.put("m1/crashed/01-a.webm", b"x")
    storage.put("m1/running/01-a.webm", b"x")
    old = (NOW - datetime.timedelta(days=40)).timestamp()
    os.utime(storage.root / "m1/crashed/01-a.webm", (old, old))
    deleted = apply_retention(storage, 30, NOW)
    assert [(d.folder, d.reason, d.recording_id) for d in deleted] == [
        ("m1/crashed", "orphaned", None)
    ]
    assert [o.name for o in storage.list()] == ["m1/running/01-a.webm"]


def test_an_unreadable_manifest_is_kept_and_logged(
    storage: LocalStorage, caplog: pytest.LogCaptureFixture
) -> None:
    storage.put("m1/bad/manifest.json", b"{not json")
    storage.put("m1/nodate/manifest.json", b'{"recording_id": "x"}')
    assert apply_retention(storage, 1, NOW) == []
    assert len(storage.list()) == 2
    assert "cannot judge m1/bad" in caplog.text and "cannot judge m1/nodate" in caplog.text


def test_erasure_on_request_ignores_age(storage: LocalStorage) -> None:
    add_recording(storage, "m1", "r1", days_ago(0))
    add_recording(storage, "m1", "r2", days_ago(0))
    erased = erase_recording(storage, "m1", "r1")
    assert erased is not None and erased.reason == "erased" and erased.recording_id == "r1"
    assert erase_recording(storage, "m1", "r1") is None
    assert {o.name.split("/")[1] for o in storage.list()} == {"r2"}


async def test_the_periodic_job_reports_each_round(storage: LocalStorage) -> None:
    add_recording(storage, "m1", "old", "2000-01-01T00:00:00+00:00")
    rounds: list[list[DeletedRecording]] = []
    reported = asyncio.Event()

    async def audit(deleted: list[DeletedRecording]) -> None:
        rounds.append(deleted)
        reported.set()

    job = asyncio.create_task(run_retention(storage, 30, 3600, audit))
    await asyncio.wait_for(reported.wait(), 5)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert [[d.folder for d in r] for r in rounds] == [["m1/old"]]


async def test_a_real_recording_expires_by_its_manifest(tmp_path: Path) -> None:
    recorder = Recorder(
        RecorderConfig(storage_root=tmp_path / "recordings", retention_days=7),
        Events(),
        clock=lambda: T0,
    )
    session = recorder.start("m1", "r1", {})
    tap = session.track(audio())
    assert tap is not None
    feed(tap, opus_stream(0.5))
    await session.stop()
    started = datetime.datetime.fromtimestamp(T0, datetime.UTC)
    assert apply_retention(recorder.storage, 30, started + datetime.timedelta(days=6)) == []
    deleted = apply_retention(recorder.storage, 30, started + datetime.timedelta(days=7))
    assert [(d.recording_id, len(d.files)) for d in deleted] == [("r1", 2)]
    assert recorder.storage.list() == []
