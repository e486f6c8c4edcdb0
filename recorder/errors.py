"""The recorder's errors, one hierarchy.

::

    RecorderError                     anything the recorder raises on purpose
    ├── RecorderConfigError           a bad [recorder] setting (also a ValueError);
    │                                 the message starts with the key
    ├── InvalidRecordingOptions       a recording's options are wrong (also a ValueError);
    │                                 raised by ``Recorder.start`` before anything is written
    ├── MalformedPayload              an RTP payload or media frame that breaks its RFC
    │                                 (also a ValueError); dropped and counted, never raised
    │                                 past the recorder
    ├── RecordingWriteError           writing a recording's files failed (ENOSPC, EIO);
    │                                 the recording is closed and reported failed
    └── StorageError                  the storage refused an operation
        ├── UnsafeName                a name that could escape the storage root, or is
        │                             not a plain relative path (also a ValueError)
        ├── StoredObjectExists        exclusive create found the name taken
        ├── StoredObjectNotFound      no object of that name
        └── IntegrityError            an encrypted file was tampered with, truncated,
                                      reordered, or the key is wrong

The SFU never sees any of these: taps drop and count, and a failed recording
is reported through ``RecordingEvents.recording_finished``.
"""

from __future__ import annotations

__all__ = [
    "IntegrityError",
    "InvalidRecordingOptions",
    "MalformedPayload",
    "RecorderConfigError",
    "RecorderError",
    "RecordingWriteError",
    "StorageError",
    "StoredObjectExists",
    "StoredObjectNotFound",
    "UnsafeName",
]


class RecorderError(Exception):
    """Base class of every error the recorder raises on purpose."""


class RecorderConfigError(RecorderError, ValueError):
    """A ``[recorder]`` setting is invalid; the message starts with the key."""


class InvalidRecordingOptions(RecorderError, ValueError):
    """The options given to ``Recorder.start`` are invalid; nothing was started."""


class MalformedPayload(RecorderError, ValueError):
    """An RTP payload or assembled frame does not follow its format."""


class RecordingWriteError(RecorderError):
    """Writing a recording's files failed; ``reason`` is short and safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StorageError(RecorderError):
    """The storage backend refused an operation."""


class UnsafeName(StorageError, ValueError):
    """A stored name is absolute, has ``..``, a separator in a component, or similar."""


class StoredObjectExists(StorageError, FileExistsError):
    """Exclusive create: an object with that name already exists."""


class StoredObjectNotFound(StorageError, FileNotFoundError):
    """No stored object has that name."""


class IntegrityError(StorageError):
    """An encrypted object failed authentication: tampered, truncated, reordered or wrong key."""
