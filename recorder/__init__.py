"""Recording: taps of the SFU's encoded media turned into files, storage and retention.

The recording side (this package's public names below) remuxes each tapped
track into its own file with PyAV, never transcoding: Opus -> Ogg, VP8 -> WebM,
H.264 -> fragmented MP4 (``format="mkv"``: Matroska for all). ``Recorder`` is
the ``townhall.contract.Recorder`` of an SFU node; ``LocalStorage`` keeps the
files under one root, optionally encrypted at rest; ``apply_retention`` deletes
old recordings. Transcription, captions and summaries live in their own
modules (``recorder.transcription``, ``recorder.captions``, ``recorder.summary``).
"""

from .config import RecorderConfig, RecordingOptions
from .errors import (
    IntegrityError,
    InvalidRecordingOptions,
    MalformedPayload,
    RecorderConfigError,
    RecorderError,
    RecordingWriteError,
    StorageError,
    StoredObjectExists,
    StoredObjectNotFound,
    UnsafeName,
)
from .retention import DeletedRecording, apply_retention, erase_recording, run_retention
from .session import Recorder, RecordingSession
from .storage import LocalStorage, Storage, StoredObject, recording_folder

__all__ = [
    "DeletedRecording",
    "IntegrityError",
    "InvalidRecordingOptions",
    "LocalStorage",
    "MalformedPayload",
    "Recorder",
    "RecorderConfig",
    "RecorderConfigError",
    "RecorderError",
    "RecordingOptions",
    "RecordingSession",
    "RecordingWriteError",
    "Storage",
    "StorageError",
    "StoredObject",
    "StoredObjectExists",
    "StoredObjectNotFound",
    "UnsafeName",
    "apply_retention",
    "erase_recording",
    "recording_folder",
    "run_retention",
]
