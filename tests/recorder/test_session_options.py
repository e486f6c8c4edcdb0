"""The recorder's configuration and a recording's options: validated, with exact messages."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from recorder.config import RecorderConfig, RecordingOptions
from recorder.errors import InvalidRecordingOptions, RecorderConfigError

KEY = base64.b64encode(bytes(32)).decode()


def test_defaults() -> None:
    config = RecorderConfig()
    assert config.storage_root == Path("data/recordings")
    assert config.key is None
    assert config.retention_days == 30


def test_a_key_is_base64_of_32_bytes() -> None:
    assert RecorderConfig(encryption_key=KEY).key == bytes(32)
    assert RecorderConfig(storage_root="x").storage_root == Path("x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"encryption_key": "not base64!"}, "recorder.encryption_key: expected base64 of 32 bytes"),
        (
            {"encryption_key": base64.b64encode(bytes(16)).decode()},
            "recorder.encryption_key: expected base64 of 32 bytes, got 16 bytes",
        ),
        ({"retention_days": -1}, "recorder.retention_days: expected an integer >= 0, got -1"),
        ({"retention_days": True}, "recorder.retention_days: expected an integer >= 0, got True"),
        (
            {"track_queue_packets": 2},
            "recorder.track_queue_packets: expected an integer >= 16, got 2",
        ),
        (
            {"reorder_window_packets": 0},
            "recorder.reorder_window_packets: expected an integer >= 1, got 0",
        ),
        (
            {"disk_reserve_bytes": -5},
            "recorder.disk_reserve_bytes: expected an integer >= 0, got -5",
        ),
        ({"mix_latency_s": 0.1}, "recorder.mix_latency_s: expected a number >= 0.5"),
    ],
)
def test_bad_settings_name_their_key(settings: dict, message: str) -> None:
    with pytest.raises(RecorderConfigError) as caught:
        RecorderConfig(**settings)
    assert str(caught.value) == message


def test_options_default_to_every_track_in_webm() -> None:
    options = RecordingOptions.parse({})
    assert options == RecordingOptions()
    assert options.includes("audio", "microphone") and options.includes("video", "camera")
    assert options.includes("video", "screen") and options.includes("audio", "screen")
    assert not options.mixed_audio and not options.encryption_enabled


def test_options_choose_what_is_recorded() -> None:
    options = RecordingOptions.parse(
        {
            "include_audio": False,
            "include_screen_share": False,
            "format": "mkv",
            "mixed_audio": True,
            "retention_days": 7,
            "auto_transcribe": True,  # not the recorder's: ignored
        }
    )
    assert not options.includes("audio", "microphone")
    assert options.includes("video", "camera")
    assert not options.includes("video", "screen")
    assert (options.format, options.mixed_audio, options.retention_days) == ("mkv", True, 7)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "avi"}, "format: expected one of webm, mkv"),
        ({"include_video": 1}, "include_video: expected true or false"),
        ({"mixed_audio": "yes"}, "mixed_audio: expected true or false"),
        ({"retention_days": -1}, "retention_days: expected an integer >= 0"),
        ({"retention_days": 1.5}, "retention_days: expected an integer >= 0"),
    ],
)
def test_bad_options_name_their_key(options: dict, message: str) -> None:
    with pytest.raises(InvalidRecordingOptions) as caught:
        RecordingOptions.parse(options)
    assert str(caught.value) == message
