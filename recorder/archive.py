"""The control plane's view of the recorder's files (its ``RecordingArchive`` port).

:class:`StorageArchive` serves downloads (decrypting through the storage),
erases recordings on request, applies retention, and formats transcripts as
subtitles; the composition root hands it to the control plane, which imports
nothing from the recorder.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any, BinaryIO, Literal

from .errors import StoredObjectNotFound
from .formats import to_srt, to_webvtt
from .retention import DeletedRecording, apply_retention, erase_recording
from .storage import Storage

__all__ = ["StorageArchive"]


class StorageArchive:
    """Recordings in one ``Storage``, as the control plane asks for them."""

    def __init__(self, storage: Storage, default_retention_days: int) -> None:
        self.storage = storage
        self.default_retention_days = default_retention_days

    @property
    def can_encrypt(self) -> bool:
        return self.storage.can_encrypt

    def open(self, path: str) -> BinaryIO:
        """The file's content (decrypted); FileNotFoundError when it is not stored."""
        try:
            return self.storage.open(path)
        except StoredObjectNotFound as exc:
            raise FileNotFoundError(str(exc)) from exc

    def erase(self, meeting_id: str, recording_id: str) -> dict[str, Any] | None:
        deleted = erase_recording(self.storage, meeting_id, recording_id)
        if deleted is None:
            return None
        # The folder names the recording even when its manifest was unreadable.
        return {**_describe(deleted), "meeting_id": meeting_id, "recording_id": recording_id}

    def expire(self, now: datetime.datetime) -> list[dict[str, Any]]:
        deleted = apply_retention(self.storage, self.default_retention_days, now)
        return [_describe(d) for d in deleted]

    def subtitles(self, transcript: Mapping[str, Any], fmt: Literal["vtt", "srt"]) -> str:
        return to_webvtt(transcript) if fmt == "vtt" else to_srt(transcript)


def _describe(deleted: DeletedRecording) -> dict[str, Any]:
    described = dataclasses.asdict(deleted)
    described["files"] = list(deleted.files)
    return described
