"""A recording of one meeting (``RecordingSession``) and the ``Recorder`` that starts them.

The SFU gets a :class:`~recorder.tracks.QueuedTap` per track; one writer
thread per session drains every tap, writes the files, and at the end computes
each file's size and SHA-256, writes ``manifest.json`` and reports the result
with ``RecordingEvents.recording_finished``. Files live under
``<meeting>/<recording>/`` in the storage.

A write that fails (disk full, I/O error) ends the whole recording at once: the
taps stop accepting packets, every file is closed (space set aside at the start
is released first, so the containers' trailers and the manifest still fit), and
the recording is reported ``failed`` with the reason, without waiting for
``stop``. Nothing here raises into the SFU.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from townhall.contract import RecordingEvents, TappedTrack, TrackTap

from .config import RecorderConfig, RecordingOptions
from .errors import InvalidRecordingOptions, RecordingWriteError, StorageError
from .mixer import MIX_RATE, AudioMixer
from .storage import LocalStorage, Reservation, Storage, recording_folder, safe_component
from .tracks import QueuedTap, TrackRecording
from .writers import container_for, opus_silence_frame

__all__ = ["MANIFEST_NAME", "Recorder", "RecordingSession"]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
RESERVE_NAME = ".reserve"
MIXED_AUDIO_NAME = "mixed-audio.ogg"
_IDLE_WAIT_S = 0.02  # the writer thread's nap when every queue is empty
_BATCH = 256  # packets taken from one queue before looking at the next
_DROP_LOG_INTERVAL_S = 10.0


def _iso(at_s: float) -> str:
    return datetime.datetime.fromtimestamp(at_s, datetime.UTC).isoformat(timespec="milliseconds")


class RecordingSession:
    """One recording of one meeting: taps in, files and a manifest out."""

    def __init__(
        self,
        *,
        meeting_id: str,
        recording_id: str,
        options: RecordingOptions,
        config: RecorderConfig,
        storage: Storage,
        events: RecordingEvents,
        loop: asyncio.AbstractEventLoop | None,
        clock: Callable[[], float] = time.time,
        on_done: Callable[[RecordingSession], None] | None = None,
    ) -> None:
        self.recording_id = recording_id
        self.meeting_id = meeting_id
        self.options = options
        self.started_at = clock()
        self.folder = recording_folder(meeting_id, recording_id)
        self.result: dict[str, Any] | None = None
        self._config = config
        self._storage = storage
        self._events = events
        self._loop = loop
        self._clock = clock
        self._on_done = on_done
        self._tracks: list[TrackRecording] = []
        self._skipped: list[dict[str, Any]] = []
        self._failure: str | None = None
        self._disk_full = False
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._reported = False
        self._report_future: concurrent.futures.Future[None] | None = None
        self._silence: bytes | None = None
        self._newest_arrival = self.started_at
        self._drops_logged = (0, 0.0)
        self._reserve = Reservation()
        self._mixer: AudioMixer | None = None
        if options.mixed_audio:
            try:
                self._mixer = AudioMixer(
                    storage.create(
                        f"{self.folder}/{MIXED_AUDIO_NAME}",
                        encrypt=options.encryption_enabled,
                        on_full=self._full,
                    ),
                    round(config.mix_latency_s * MIX_RATE),
                )
            except (OSError, StorageError, RecordingWriteError) as exc:
                self._failure = f"cannot start writing: {exc}"
                logger.warning("recording %s could not start: %s", recording_id, exc)
        self._thread = threading.Thread(
            target=self._run, name=f"recorder-{recording_id}", daemon=True
        )
        self._thread.start()

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def track(self, track: TappedTrack) -> TrackTap | None:
        """A tap for a track now forwarded, or None when this recording leaves it out."""
        reason = self._refusal(track)
        container = container_for(self.options.format, track.codec)
        if reason is None and container is None:
            reason = f"codec {track.codec} is not recorded"
        if reason is not None or container is None:
            if reason != "the recording is over":
                self._skipped.append(
                    {
                        "participant_id": track.participant_id,
                        "track_id": track.track_id,
                        "kind": track.kind,
                        "source": track.source,
                        "codec": track.codec,
                        "reason": reason or "",
                    }
                )
            return None
        index = len(self._tracks) + 1
        person = safe_component(track.participant_name, fallback="participant", max_chars=40)
        source = safe_component(track.source, fallback=track.kind)
        name = f"{self.folder}/{index:02d}-{person}-{source}.{container.extension}"
        tap = QueuedTap(self._config.track_queue_packets)
        self._tracks.append(
            TrackRecording(
                tap=tap,
                track=track,
                name=name,
                container=container,
                storage=self._storage,
                encrypt=self.options.encryption_enabled,
                on_full=self._full,
                started_at=self.started_at,
                reorder_window=self._config.reorder_window_packets,
                silence=self._silence_frame,
                mixer=self._mixer,
            )
        )
        return tap

    async def stop(self) -> None:
        """Close every file, write the manifest and report; never raises."""
        self._stopping.set()
        for recording in tuple(self._tracks):
            recording.tap.accepting = False
        await asyncio.to_thread(self._thread.join)
        if self._claim_report():
            await self._report()
        elif self._report_future is not None:
            await asyncio.wrap_future(self._report_future)

    def _refusal(self, track: TappedTrack) -> str | None:
        if self._stopping.is_set() or self._failure is not None:
            return "the recording is over"
        if not self.options.includes(track.kind, track.source):
            return f"{track.source} {track.kind} is not included"
        return None

    def _silence_frame(self) -> bytes:
        if self._silence is None:
            self._silence = opus_silence_frame()
        return self._silence

    def _full(self) -> bool:
        """The disk is full: give back the reserve so files can be closed, and end."""
        self._disk_full = True
        for recording in tuple(self._tracks):
            recording.halted = True
        return self._reserve.release()

    # -- the writer thread ---------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._failure is None:
                self._reserve_space()
                self._write_until_stopped()
        except RecordingWriteError as exc:
            self._fail(exc.reason)
        except Exception as exc:  # noqa: BLE001 - a recorder bug must not pass silently
            logger.exception("recording %s: writer thread failed", self.recording_id)
            self._fail(f"internal error: {type(exc).__name__}")
        try:
            self._close_all()
            self.result = self._finish()
        except Exception:  # noqa: BLE001
            logger.exception("recording %s: finishing failed", self.recording_id)
            self.result = self._result_without_manifest()
        if self._failure is not None and self._claim_report():
            self._report_from_thread()
        if self._on_done is not None:
            self._on_done(self)

    def _reserve_space(self) -> None:
        """Set disk space aside (in this thread: allocating is I/O) to close files when full."""
        try:
            self._reserve = self._storage.reserve(
                f"{self.folder}/{RESERVE_NAME}", self._config.disk_reserve_bytes
            )
        except (OSError, StorageError) as exc:
            raise RecordingWriteError(f"cannot start writing: {exc}") from exc

    def _write_until_stopped(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            worked = False
            for recording in tuple(self._tracks):
                if recording.finished:
                    continue
                worked = recording.drain(_BATCH) > 0 or worked
                if self._disk_full:
                    raise RecordingWriteError("disk full (ENOSPC)")
                if recording.drained or (stopping and not recording.tap.packets):
                    recording.finish()
                self._newest_arrival = max(self._newest_arrival, recording.newest_arrival)
            if self._mixer is not None:
                now = round((self._newest_arrival - self.started_at) * MIX_RATE)
                self._mixer.advance(now)
            self._log_drops()
            if stopping and all(r.finished for r in self._tracks):
                return
            if not worked:
                self._stopping.wait(_IDLE_WAIT_S)

    def _fail(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
            logger.warning("recording %s failed: %s", self.recording_id, reason)
        for recording in tuple(self._tracks):
            recording.tap.accepting = False

    def _close_all(self) -> None:
        """Close every file (aborting on failure) and give the reserve back."""
        self._reserve.release()
        for recording in tuple(self._tracks):
            if self._failure is not None:
                recording.abort()
                continue
            try:
                recording.finish()
            except RecordingWriteError as exc:
                self._fail(exc.reason)
        if self._mixer is not None:
            try:
                if self._failure is None:
                    self._mixer.close()
                else:
                    self._mixer.abort()
            except RecordingWriteError as exc:
                self._fail(exc.reason)
        if self._disk_full:
            self._fail("disk full (ENOSPC)")

    def _log_drops(self) -> None:
        dropped = sum(r.tap.dropped for r in self._tracks)
        logged, at = self._drops_logged
        now = time.monotonic()
        if dropped > logged and now - at >= _DROP_LOG_INTERVAL_S:
            logger.warning(
                "recording %s: %d packets dropped (writer behind, queues full)",
                self.recording_id,
                dropped,
            )
            self._drops_logged = (dropped, now)

    # -- the result ----------------------------------------------------------------

    def _finish(self) -> dict[str, Any]:
        files = [self._file_entry(r) for r in self._tracks if r.writer is not None]
        for recording in self._tracks:
            if recording.writer is None:
                self._skipped.append(self._without_media(recording))
        if self._mixer is not None:
            files.append(self._mixed_entry(self._mixer))
        stopped_at = self._clock()
        manifest: dict[str, Any] = {
            "version": MANIFEST_VERSION,
            "recording_id": self.recording_id,
            "meeting_id": self.meeting_id,
            "status": "failed" if self._failure else "completed",
            "error": self._failure,
            "started_at": _iso(self.started_at),
            "stopped_at": _iso(stopped_at),
            "duration_s": round(stopped_at - self.started_at, 3),
            "format": self.options.format,
            "encrypted": self.options.encryption_enabled,
            "retention_days": self._retention_days(),
            "files": files,
            "skipped_tracks": self._skipped,
        }
        manifest_name: str | None = f"{self.folder}/{MANIFEST_NAME}"
        try:
            data = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
            self._storage.put(
                f"{self.folder}/{MANIFEST_NAME}", data, encrypt=self.options.encryption_enabled
            )
        except (OSError, StorageError) as exc:
            logger.warning("recording %s: manifest not written: %s", self.recording_id, exc)
            manifest_name = None
            if self._failure is None:
                self._failure = manifest["error"] = f"manifest not written: {exc}"
                manifest["status"] = "failed"
        return {
            "status": manifest["status"],
            "error": manifest["error"],
            "files": files,
            "manifest": manifest_name,
            "recording_id": self.recording_id,
            "meeting_id": self.meeting_id,
            "started_at": manifest["started_at"],
            "stopped_at": manifest["stopped_at"],
            "duration_s": manifest["duration_s"],
            "encrypted": self.options.encryption_enabled,
            "skipped_tracks": self._skipped,
        }

    @staticmethod
    def _without_media(recording: TrackRecording) -> dict[str, Any]:
        track, stats = recording.track, recording.stats
        return {
            "participant_id": track.participant_id,
            "track_id": track.track_id,
            "kind": track.kind,
            "source": track.source,
            "codec": track.codec,
            "reason": "no usable media arrived"
            + (" (no keyframe)" if stats.frames_dropped and track.kind == "video" else ""),
            "packets": stats.packets,
            "packets_malformed": stats.packets_malformed,
        }

    def _retention_days(self) -> int:
        days = self.options.retention_days
        return self._config.retention_days if days is None else days

    def _file_entry(self, recording: TrackRecording) -> dict[str, Any]:
        entry = recording.describe()
        entry.update(self._checksum(recording.name))
        entry["encrypted"] = self.options.encryption_enabled
        if recording.writer is not None and recording.writer.failed:
            entry["truncated"] = True
        return entry

    def _mixed_entry(self, mixer: AudioMixer) -> dict[str, Any]:
        name = f"{self.folder}/{MIXED_AUDIO_NAME}"
        entry: dict[str, Any] = {
            "participant_id": None,
            "name": "mixed audio",
            "track_id": None,
            "kind": "audio",
            "source": "mix",
            "codec": "opus",
            "container": "ogg",
            "path": name,
            "start_offset_s": 0.0,
            "duration_s": round(mixer.duration_s, 3),
            "frames": round(mixer.duration_s * 50),
            "frames_dropped": 0,
            "late_samples": mixer.late_samples,
            "encrypted": self.options.encryption_enabled,
        }
        if self._failure is not None:
            entry["truncated"] = True
        entry.update(self._checksum(name))
        return entry

    def _checksum(self, name: str) -> dict[str, Any]:
        digest = hashlib.sha256()
        size = 0
        try:
            with self._storage.open(name) as file:
                while chunk := file.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
        except (OSError, StorageError) as exc:
            logger.warning("recording %s: cannot read back %s: %s", self.recording_id, name, exc)
            return {"bytes": size, "sha256": None}
        return {"bytes": size, "sha256": digest.hexdigest()}

    def _result_without_manifest(self) -> dict[str, Any]:
        return {
            "status": "failed",
            "error": self._failure or "internal error while finishing",
            "files": [],
            "manifest": None,
            "recording_id": self.recording_id,
            "meeting_id": self.meeting_id,
        }

    def _claim_report(self) -> bool:
        with self._lock:
            if self._reported:
                return False
            self._reported = True
            return True

    def _report_from_thread(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            logger.warning("recording %s failed with no loop to report to", self.recording_id)
            return
        try:
            self._report_future = asyncio.run_coroutine_threadsafe(self._report(), loop)
        except RuntimeError:
            logger.warning("recording %s: the loop is gone; not reported", self.recording_id)

    async def _report(self) -> None:
        result = self.result or self._result_without_manifest()
        try:
            await self._events.recording_finished(self.meeting_id, self.recording_id, result)
        except Exception:  # noqa: BLE001 - reporting must not raise into the SFU
            logger.exception("recording %s: recording_finished failed", self.recording_id)


class Recorder:
    """Starts recording sessions; lives in the process of the SFU node."""

    def __init__(
        self,
        config: RecorderConfig,
        events: RecordingEvents,
        storage: Storage | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.storage = storage or LocalStorage(config.storage_root, config.key)
        self._events = events
        self._clock = clock
        self._sessions: dict[str, RecordingSession] = {}
        self._lock = threading.Lock()

    @property
    def sessions(self) -> list[RecordingSession]:
        """The recordings still running."""
        with self._lock:
            return list(self._sessions.values())

    def start(
        self, meeting_id: str, recording_id: str, options: dict[str, Any]
    ) -> RecordingSession:
        """Open a recording; InvalidRecordingOptions (nothing started) if the options are bad."""
        parsed = RecordingOptions.parse(options)
        if parsed.encryption_enabled and not self.storage.can_encrypt:
            raise InvalidRecordingOptions(
                "encryption_enabled: no encryption key is configured (recorder.encryption_key)"
            )
        if recording_id in self._sessions:
            raise InvalidRecordingOptions(f"recording {recording_id} is already running")
        if self.storage.list(recording_folder(meeting_id, recording_id)):
            raise InvalidRecordingOptions(f"recording {recording_id} already has files")
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        session = RecordingSession(
            meeting_id=meeting_id,
            recording_id=recording_id,
            options=parsed,
            config=self.config,
            storage=self.storage,
            events=self._events,
            loop=loop,
            clock=self._clock,
            on_done=self._forget,
        )
        with self._lock:
            self._sessions[recording_id] = session
        return session

    async def close(self) -> None:
        """Stop every running recording (the node shuts down)."""
        await asyncio.gather(*(session.stop() for session in self.sessions))

    def _forget(self, session: RecordingSession) -> None:
        with self._lock:
            if self._sessions.get(session.recording_id) is session:
                del self._sessions[session.recording_id]
