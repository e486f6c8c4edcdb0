"""What a recording includes: the body of ``POST .../recording/start``, parsed at the edge.

Absent fields take the server's defaults (config ``[recorder]``), which also
apply to recordings a host starts from the meeting (the ``record`` frame).
:meth:`RecordingRequest.to_options` is what the media plane hands the
recorder: every key explicit, so that the recorder's manifest and the
control plane's records agree (retention above all).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from .bodies import _Fields
from .errors import InvalidField

__all__ = ["FORMATS", "MAX_RETENTION_DAYS", "RecordingRequest", "parse_recording_request"]

# "webm": Opus -> Ogg, VP8 -> WebM, H.264 -> MP4; "mkv": Matroska for all.
FORMATS = ("webm", "mkv")
MAX_RETENTION_DAYS = 3650
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_FLAGS = (
    "include_audio",
    "include_video",
    "include_screen_share",
    "auto_transcribe",
    "generate_summary",
    "encryption_enabled",
    "mixed_audio",
    "live_captions",
)


@dataclass(frozen=True)
class RecordingRequest:
    """A recording's configuration."""

    include_audio: bool = True
    include_video: bool = True
    include_screen_share: bool = True
    format: str = "webm"
    auto_transcribe: bool = True
    generate_summary: bool = True
    # None: the model's language (tiny.en: English), or detection.
    language: str | None = None
    # None: the server's default; 0 keeps the recording until it is erased.
    retention_days: int | None = None
    encryption_enabled: bool = False
    # One more file: everyone's audio mixed (decoded off the forwarding path).
    mixed_audio: bool = False
    # Speech transcribed while the meeting runs, sent to everyone as captions.
    live_captions: bool = False

    def to_options(self, default_retention_days: int) -> dict[str, Any]:
        """The options handed to the media plane's recorder, every key explicit."""
        options = dataclasses.asdict(self)
        if self.retention_days is None:
            options["retention_days"] = default_retention_days
        return options


def parse_recording_request(body: dict[str, Any], defaults: RecordingRequest) -> RecordingRequest:
    """Validate ``POST /api/v1/meetings/{id}/recording/start``; absent fields keep ``defaults``."""
    fields = _Fields(body, (*_FLAGS, "format", "language", "retention_days"))
    values: dict[str, Any] = {
        name: fields.boolean(name, getattr(defaults, name)) for name in _FLAGS
    }
    values["format"] = fields.choice("format", FORMATS) or defaults.format
    language = fields.text("language", 16)
    if language is not None and not _LANGUAGE.match(language):
        raise InvalidField("'language' must be a language code such as 'en'", field="language")
    values["language"] = language or defaults.language
    retention = fields.integer("retention_days", 0, MAX_RETENTION_DAYS)
    values["retention_days"] = defaults.retention_days if retention is None else retention
    request = RecordingRequest(**values)
    if not (request.include_audio or request.include_video or request.include_screen_share):
        raise InvalidField(
            "a recording must include audio, video or the screen share", field="include_audio"
        )
    return request
