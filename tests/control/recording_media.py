"""A control plane with a recorder at its seams: the fake media plane records for real.

``RecordingMediaPlane`` is the fake media plane of the control plane tests,
plus a recorder that behaves like the node's: on ``stop_recording`` it writes
real files into a real :class:`recorder.storage.LocalStorage` (random bytes
standing in for media, a manifest as the recorder writes it) and reports
``recording_finished`` to the control plane before returning, as the SFU's
recorder does. The control plane reaches the files through the real
:class:`recorder.archive.StorageArchive`. The clock is a fake one tests move.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from control import create_app
from control.app import RECORDING_EVENTS, RECORDINGS
from control.recording_events import RecordingResults
from control.recordings import Recordings
from recorder.archive import StorageArchive
from recorder.config import decode_key
from recorder.storage import LocalStorage, recording_folder
from tests.control.conftest import Hall, hall_config
from tests.control.fake_media import FakeMediaPlane

KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes


class Clock:
    """A clock that stands still until moved."""

    def __init__(self) -> None:
        self.now = datetime.datetime.now(datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += datetime.timedelta(**delta)


@dataclass
class RecordingMediaPlane(FakeMediaPlane):
    """The fake media plane with a recorder that writes files and reports them."""

    storage: LocalStorage | None = None
    clock: Clock | None = None
    results: RecordingResults | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: dict[str, datetime.datetime] = field(default_factory=dict)
    # What the next finished recording reports as its status and error.
    outcome: tuple[str, str | None] = ("completed", None)

    async def start_recording(
        self, meeting_id: str, recording_id: str, options: dict[str, Any]
    ) -> bool:
        if not await super().start_recording(meeting_id, recording_id, options):
            return False
        assert self.clock is not None
        self.options[recording_id] = options
        self.started[recording_id] = self.clock()
        return True

    async def stop_recording(self, meeting_id: str) -> str | None:
        recording_id = await super().stop_recording(meeting_id)
        if recording_id is not None:
            assert self.results is not None
            result = self.write_files(meeting_id, recording_id)
            await self.results.recording_finished(meeting_id, recording_id, result)
        return recording_id

    def write_files(self, meeting_id: str, recording_id: str) -> dict[str, Any]:
        """Two participants' files and a manifest, as the recorder writes them."""
        assert self.storage is not None and self.clock is not None
        options = self.options[recording_id]
        encrypt = bool(options.get("encryption_enabled"))
        folder = recording_folder(meeting_id, recording_id)
        files = []
        for index, (who, kind, extension, offset) in enumerate(
            (("ada", "audio", "ogg", 0.0), ("bob", "video", "webm", 2.5)), start=1
        ):
            name = f"{folder}/{index:02d}-{who}-{'microphone' if kind == 'audio' else 'camera'}"
            content = os.urandom(40_000 + index)
            self.storage.put(f"{name}.{extension}", content, encrypt=encrypt)
            files.append(
                {
                    "participant_id": f"p-{who}",
                    "name": who.title(),
                    "track_id": f"t{index}",
                    "kind": kind,
                    "source": "microphone" if kind == "audio" else "camera",
                    "codec": "opus" if kind == "audio" else "vp8",
                    "container": extension,
                    "path": f"{name}.{extension}",
                    "start_offset_s": offset,
                    "duration_s": 10.0 - offset,
                    "frames": 500,
                    "bytes": len(content),
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "encrypted": encrypt,
                }
            )
        status, error = self.outcome
        started = self.started[recording_id].isoformat()
        manifest = {
            "version": 1,
            "recording_id": recording_id,
            "meeting_id": meeting_id,
            "status": status,
            "error": error,
            "started_at": started,
            "stopped_at": self.clock().isoformat(),
            "duration_s": 10.0,
            "retention_days": options["retention_days"],
            "files": files,
        }
        self.storage.put(f"{folder}/manifest.json", json.dumps(manifest).encode(), encrypt=encrypt)
        return {**manifest, "manifest": f"{folder}/manifest.json", "encrypted": encrypt}


class Studio(Hall):
    """A running control plane whose meetings can be recorded."""

    media: RecordingMediaPlane

    def __init__(
        self, client: TestClient[Any, Any], media: RecordingMediaPlane, clock: Clock
    ) -> None:
        super().__init__(client, media)
        self.clock = clock
        self.results = client.app[RECORDING_EVENTS]
        self.recordings: Recordings = client.app[RECORDINGS]

    async def connected_meeting(self, **policy: Any) -> tuple[str, dict[str, Any]]:
        """A meeting with a connected host; (meeting id, the host's grant)."""
        meeting_id = await self.meeting(**policy)
        host = await self.join(meeting_id, "Host", role="host")
        await self.connect(host)
        return meeting_id, host

    async def record(self, meeting_id: str, token: str, **options: Any) -> dict[str, Any]:
        """Start and stop a recording; the stopped recording."""
        path = f"/api/v1/meetings/{meeting_id}/recording"
        await self.call("POST", f"{path}/start", options, token=token, status=201)
        stopped: dict[str, Any] = await self.call("POST", f"{path}/stop", token=token)
        return stopped


async def open_studio(
    tmp_path: Path, *, key: str | None = None, **config: Any
) -> AsyncIterator[Studio]:
    """A studio on tmp_path; ``config`` changes ControlConfig fields."""
    clock = Clock()
    storage = LocalStorage(tmp_path / "recordings", None if key is None else decode_key(key))
    media = RecordingMediaPlane(storage=storage, clock=clock)
    app = create_app(
        hall_config(tmp_path, **{"retention_interval_s": 0, **config}),
        media=media,
        archive=StorageArchive(storage, 30),
        clock=clock,
    )
    media.results = app[RECORDING_EVENTS]
    async with TestClient(TestServer(app)) as client:
        yield Studio(client, media, clock)

