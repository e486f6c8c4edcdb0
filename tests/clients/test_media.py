"""Synthetic sources, their pacing, and recording what arrives."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
import numpy as np
import pytest

from clients.python import ClientOptions, Participant
from clients.python.media import RecordingSink, SyntheticAudioTrack, SyntheticVideoTrack
from tests.clients.fake_sfu import running_fake_sfu


async def test_video_frames_move_and_are_paced_in_real_time() -> None:
    track = SyntheticVideoTrack(320, 240, fps=30)
    start = time.monotonic()
    frames = [await track.recv() for _ in range(16)]
    elapsed = time.monotonic() - start
    assert 0.4 < elapsed < 1.0  # 15 frame periods of 33 ms
    assert frames[0].format.name == "yuv420p" and (frames[0].width, frames[0].height) == (320, 240)
    assert [f.pts for f in frames[:3]] == [0, 3000, 6000]
    assert not np.array_equal(frames[0].to_ndarray(), frames[1].to_ndarray())
    track.stop()


async def test_a_paused_source_skips_ahead_instead_of_bursting() -> None:
    track = SyntheticVideoTrack(64, 64, fps=50)
    first = await track.recv()
    await asyncio.sleep(0.5)
    start = time.monotonic()
    late = await track.recv()
    following = await track.recv()
    assert time.monotonic() - start > 0.015  # the frame after the pause waits its period
    assert late.pts is not None and first.pts is not None and following.pts is not None
    assert late.pts - first.pts >= 0.45 * 90_000  # timestamps follow the wall clock
    assert following.pts - late.pts == 90_000 // 50


async def test_audio_is_20_ms_of_s16_mono_with_continuous_timestamps() -> None:
    track = SyntheticAudioTrack()
    frames = [await track.recv() for _ in range(3)]
    assert [f.pts for f in frames] == [0, 960, 1920]
    samples = np.concatenate([f.to_ndarray()[0] for f in frames])
    assert samples.dtype == np.int16 and len(samples) == 2880
    assert 0.2 * 32767 < np.abs(samples).max() <= 0.25 * 32767 + 1
    # No click at frame boundaries: the step between samples stays that of a sine.
    assert np.abs(np.diff(samples.astype(np.int32))).max() < 0.25 * 32767 * 2 * np.pi * 1300 / 48000


def test_odd_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="even and at least 16"):
        SyntheticVideoTrack(641, 360)


async def test_recording_sink_writes_playable_files(tmp_path: Path) -> None:
    async with running_fake_sfu() as fake:
        bob = await Participant.join(fake.base_url, "m1", "Bob", options=ClientOptions(timeout_s=5))
        sink = RecordingSink(tmp_path / "rec", {"p-echo": "Echo Bot"})
        bob.add_listener(sink.on_event)
        bob.add_frame_listener(sink.on_frame)
        try:
            session = await asyncio.wait_for(fake.joined.get(), 5)
            await session.add_echo_tracks()
            await bob.wait_until(
                lambda: (
                    len(bob.remote_tracks) == 2
                    and all(t.frames > 20 for t in bob.remote_tracks.values())
                ),
                10,
                "frames to record",
            )
        finally:
            await bob.leave()
            await sink.close()
    names = sorted(p.name for p in sink.files)
    assert names == ["Echo_Bot-camera-1.webm", "Echo_Bot-microphone-0.ogg"]
    for path in sink.files:
        with av.open(str(path)) as container:
            stream = container.streams[0]
            decoded = sum(1 for _ in container.decode(stream))
        assert decoded > 5, path
