"""The recorder's slice of the configuration, and the options of one recording.

``RecorderConfig`` is the ``[recorder]`` section (validated when built: a bad
value is a :class:`RecorderConfigError` whose message starts with the key).
``RecordingOptions`` is what ``Recorder.start`` receives from the control plane
for one recording.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidRecordingOptions, RecorderConfigError

__all__ = ["FORMATS", "RecorderConfig", "RecordingOptions", "decode_key"]

KEY_BYTES = 32
# "webm": VP8 -> .webm, Opus -> .ogg, H.264 -> .mp4 (fragmented).
# "mkv": everything in Matroska (.mkv video, .mka audio).
FORMATS = ("webm", "mkv")


def decode_key(value: str, key: str = "recorder.encryption_key") -> bytes:
    """The 32-byte AES-256 key from its base64 text; ``key`` names it in the error."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise RecorderConfigError(f"{key}: expected base64 of {KEY_BYTES} bytes") from None
    if len(raw) != KEY_BYTES:
        raise RecorderConfigError(
            f"{key}: expected base64 of {KEY_BYTES} bytes, got {len(raw)} bytes"
        )
    return raw


@dataclass(frozen=True)
class RecorderConfig:
    """Recording settings; every field is a key of the ``[recorder]`` section."""

    # Where recordings are stored: <storage_root>/<meeting_id>/<recording_id>/.
    storage_root: Path = Path("data/recordings")
    # Base64 of 32 random bytes (AES-256-GCM). None: recordings that ask for
    # encryption at rest are refused.
    encryption_key: str | None = None
    # Recordings older than this are deleted by the retention job; 0 keeps them.
    retention_days: int = 30
    # Packets queued per track between the SFU's loop and the writer thread;
    # beyond this, packets are dropped and counted (the meeting is never slowed).
    track_queue_packets: int = 4096
    # How many packets later a missing packet is given up as lost (reordering,
    # retransmissions arriving late).
    reorder_window_packets: int = 128
    # Disk space set aside per recording so that its files can still be closed
    # properly (trailers, manifest) when the disk fills up.
    disk_reserve_bytes: int = 4 * 1024 * 1024
    # The mixed-audio file lags the newest packet by this much, so that late
    # packets still find their place in the mix.
    mix_latency_s: float = 5.0

    def __post_init__(self) -> None:
        if isinstance(self.storage_root, str):
            object.__setattr__(self, "storage_root", Path(self.storage_root))
        if self.encryption_key is not None:
            decode_key(self.encryption_key)
        _at_least("recorder.retention_days", self.retention_days, 0)
        _at_least("recorder.track_queue_packets", self.track_queue_packets, 16)
        _at_least("recorder.reorder_window_packets", self.reorder_window_packets, 1)
        _at_least("recorder.disk_reserve_bytes", self.disk_reserve_bytes, 0)
        latency = self.mix_latency_s
        if not isinstance(latency, int | float) or isinstance(latency, bool) or latency < 0.5:
            raise RecorderConfigError("recorder.mix_latency_s: expected a number >= 0.5")
        if not isinstance(self.storage_root, Path):
            raise RecorderConfigError("recorder.storage_root: expected a path")

    @property
    def key(self) -> bytes | None:
        """The decoded encryption key, or None when none is configured."""
        return None if self.encryption_key is None else decode_key(self.encryption_key)


def _at_least(key: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RecorderConfigError(f"{key}: expected an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class RecordingOptions:
    """What one recording includes and how it is written."""

    include_audio: bool = True
    include_video: bool = True
    include_screen_share: bool = True
    format: str = "webm"
    mixed_audio: bool = False
    encryption_enabled: bool = False
    # None: the recorder's configured default.
    retention_days: int | None = None

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> RecordingOptions:
        """Options from the control plane's recording configuration.

        Keys the recorder does not use (``auto_transcribe``, ``language``...) are
        ignored; a known key with a wrong value raises InvalidRecordingOptions.
        """
        values: dict[str, Any] = {}
        for key in ("include_audio", "include_video", "include_screen_share"):
            values[key] = _flag(options, key, True)
        values["mixed_audio"] = _flag(options, "mixed_audio", False)
        values["encryption_enabled"] = _flag(options, "encryption_enabled", False)
        fmt = options.get("format")
        if fmt is None:
            fmt = "webm"
        if fmt not in FORMATS:
            raise InvalidRecordingOptions(f"format: expected one of {', '.join(FORMATS)}")
        values["format"] = fmt
        days = options.get("retention_days")
        if days is not None and (not isinstance(days, int) or isinstance(days, bool) or days < 0):
            raise InvalidRecordingOptions("retention_days: expected an integer >= 0")
        values["retention_days"] = days
        return cls(**values)

    def includes(self, kind: str, source: str) -> bool:
        """Whether a track of this kind and source is recorded."""
        if source == "screen":
            return self.include_screen_share
        if kind == "audio":
            return self.include_audio
        if kind == "video":
            return self.include_video
        return False


def _flag(options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRecordingOptions(f"{key}: expected true or false")
    return value
