"""The recorder's files as the control plane sees them: ``RecordingArchive``.

The control plane keeps the records of recordings (rows, audit, links) but not
their files: those belong to the recorder's storage, which this port reaches
without importing the recorder (the composition root hands an implementation,
``recorder.archive.StorageArchive``, to :func:`control.app.create_app`).
Every method but :meth:`RecordingArchive.subtitles` may block (disk): call
them in a thread. Without a recorder, :class:`DetachedArchive` stands in: it
has no files.

An erased or expired recording is described as a dict ``{"meeting_id",
"recording_id", "folder", "reason", "files": [names], "bytes"}``
(``meeting_id``/``recording_id`` may be None for a folder without manifest).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, BinaryIO, Literal, Protocol

__all__ = ["DetachedArchive", "RecordingArchive", "SubtitleFormat"]

SubtitleFormat = Literal["vtt", "srt"]


class RecordingArchive(Protocol):
    """Where the recorder keeps recordings, and what it can make of a transcript."""

    @property
    def can_encrypt(self) -> bool:
        """Whether recordings can be encrypted at rest (a key is configured)."""
        ...

    def open(self, path: str) -> BinaryIO:
        """A stored file's content, decrypted; FileNotFoundError when it is gone."""
        ...

    def erase(self, meeting_id: str, recording_id: str) -> dict[str, Any] | None:
        """Delete every file of one recording now; None when it has none."""
        ...

    def expire(self, now: datetime.datetime) -> list[dict[str, Any]]:
        """Delete every recording older than its retention (and orphaned folders)."""
        ...

    def subtitles(self, transcript: Mapping[str, Any], fmt: SubtitleFormat) -> str:
        """A transcript as WebVTT or SRT, one cue per segment, with the speaker."""
        ...


class DetachedArchive:
    """No recorder: no files, nothing to erase, no subtitles."""

    @property
    def can_encrypt(self) -> bool:
        return False

    def open(self, path: str) -> BinaryIO:
        raise FileNotFoundError(f"{path}: this server has no recorder")

    def erase(self, meeting_id: str, recording_id: str) -> dict[str, Any] | None:
        return None

    def expire(self, now: datetime.datetime) -> list[dict[str, Any]]:
        return []

    def subtitles(self, transcript: Mapping[str, Any], fmt: SubtitleFormat) -> str:
        raise FileNotFoundError("this server has no recorder to format subtitles")
