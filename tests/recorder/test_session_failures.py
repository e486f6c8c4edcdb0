"""A recording whose disk fills or fails is closed, playable up to the failure, and reported."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from recorder.config import RecorderConfig
from recorder.session import Recorder
from recorder.storage import LocalFile
from tests.conftest import require_in_ci
from tests.recorder.rtp_media import T0, count_frames, feed, opus_stream, probe, vp8_stream
from tests.recorder.test_session import Events, audio, video

SECONDS = 15


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 300 kB tmpfs, mounted for the test and unmounted after it."""
    if os.geteuid() != 0:
        require_in_ci("mounting a tmpfs needs root")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300k,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        require_in_ci(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def record_until_reported(recorder: Recorder, events: Events) -> tuple[Any, list[Any]]:
    """Feed a second of media at a time, as a meeting would, until the recorder reports."""
    session = recorder.start("m1", "r1", {})
    mic, cam = session.track(audio()), session.track(video())
    assert mic is not None and cam is not None
    sound, picture = opus_stream(SECONDS), vp8_stream(SECONDS, size=(640, 480))
    for second in range(SECONDS):
        window = (T0 + second, T0 + second + 1)
        feed(mic, [p for p in sound if window[0] <= p.arrival_s < window[1]])
        feed(cam, [p for p in picture if window[0] <= p.arrival_s < window[1]])
        try:
            await asyncio.wait_for(events.arrived.wait(), 0.05)
            break
        except TimeoutError:
            pass
    return session, [mic, cam]


async def test_a_full_disk_fails_the_recording_cleanly(tiny_disk: Path) -> None:
    events = Events()
    config = RecorderConfig(storage_root=tiny_disk / "recordings", disk_reserve_bytes=96 * 1024)
    recorder = Recorder(config, events, clock=lambda: T0)
    session, taps = await record_until_reported(recorder, events)
    # Reported at once, without waiting for stop.
    assert len(events.finished) == 1
    _, _, result = events.finished[0]
    assert result["status"] == "failed"
    assert result["error"] == "disk full (ENOSPC)"
    # The meeting goes on: the taps take packets and ignore them.
    for tap in taps:
        tap.packet(1, 1, True, b"\xf8\xff\xfe", T0 + 99)
    await session.stop()
    assert len(events.finished) == 1
    # Every file was closed properly with the space set aside: it plays to the end.
    assert result["manifest"] == "m1/r1/manifest.json"
    assert len(result["files"]) == 2
    for entry in result["files"]:
        path = recorder.storage.root / entry["path"]  # type: ignore[attr-defined]
        info = probe(path)
        assert 1.0 < entry["duration_s"] < SECONDS
        assert float(info["format"]["duration"]) == pytest.approx(entry["duration_s"], abs=0.1)
        frames, complaints = count_frames(path)
        assert frames == entry["frames"] and complaints == ""
        assert entry["sha256"] is not None
    manifest = recorder.storage.read_bytes("m1/r1/manifest.json")
    assert b'"status": "failed"' in manifest


async def test_an_io_error_fails_the_recording_and_keeps_what_was_written(tmp_path: Path) -> None:
    events = Events()
    recorder = Recorder(
        RecorderConfig(storage_root=tmp_path / "recordings"), events, clock=lambda: T0
    )
    real_write = LocalFile.write

    def failing_write(self: LocalFile, data: bytes) -> int:
        if self.tell() + len(data) > 60_000:  # a media file fails 60 kB in
            raise OSError(errno.EIO, "Input/output error")
        return real_write(self, data)

    with mock.patch.object(LocalFile, "write", failing_write):
        session, _ = await record_until_reported(recorder, events)
        await session.stop()
    assert len(events.finished) == 1
    result = events.finished[0][2]
    assert result["status"] == "failed"
    assert result["error"] == "Input/output error (EIO)"
    truncated = [f for f in result["files"] if f.get("truncated")]
    assert len(truncated) == 1  # the file that failed says so
    for entry in result["files"]:
        frames, complaints = count_frames(recorder.storage.root / entry["path"])  # type: ignore[attr-defined]
        assert frames > 0  # readable up to the failure
        if not entry.get("truncated"):
            assert complaints == ""  # the other file was closed properly
    assert recorder.storage.read_bytes("m1/r1/manifest.json").count(b'"truncated": true') == len(
        truncated
    )
