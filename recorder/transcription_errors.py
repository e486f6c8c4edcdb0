"""Errors of transcription and live captions.

Hierarchy::

    TranscriptionError          anything that stops a transcript being made
    ├── ModelNotFound           the configured model directory is missing or incomplete
    ├── AudioDecodeError        a recorded file cannot be opened or decoded
    └── TranscriptionBusy       the bounded job queue is full: try again later

They are kept apart from the recorder's ``errors.py`` (files, storage) so the
transcription modules carry no dependency on the recording writers; the one
function at the edge that maps recorder errors can take these too.
"""

from __future__ import annotations

__all__ = ["AudioDecodeError", "ModelNotFound", "TranscriptionBusy", "TranscriptionError"]


class TranscriptionError(Exception):
    """A transcript could not be made."""


class ModelNotFound(TranscriptionError):
    """The speech model directory is missing or lacks a file faster-whisper needs."""


class AudioDecodeError(TranscriptionError):
    """A recorded audio file cannot be opened or decoded."""


class TranscriptionBusy(TranscriptionError):
    """The transcription queue is full; the caller should retry or report the backlog."""
