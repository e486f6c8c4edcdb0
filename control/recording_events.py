"""What the recorder tells the control plane (``townhall.contract.RecordingEvents``).

* ``recording_finished``: the files are closed; the row becomes ``completed``
  or ``failed`` (with the reason), with each file's size, duration, offset and
  checksum; the transcript and summary it asked for become ``pending``.
  Audited. A recording that failed while the meeting went on (a full disk)
  is announced to the meeting (``recording {state: "failed"}``) and stopped
  at the media plane, so that nobody believes they are still recorded.
* ``transcript_ready`` / ``summary_ready``: kept (``completed`` or ``failed``
  with the reason). One that arrives for a recording erased meanwhile is
  dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Coroutine
from typing import Any

from .audit import AuditEntry
from .context import ControlContext
from .recording_store import RecordingRecord, RecordingRecords

__all__ = ["FILE_FIELDS", "RecordingResults"]

log = logging.getLogger(__name__)

# What the control plane keeps of each file the recorder reports.
FILE_FIELDS = (
    "path",
    "participant_id",
    "name",
    "track_id",
    "kind",
    "source",
    "codec",
    "container",
    "bytes",
    "sha256",
    "duration_s",
    "start_offset_s",
    "frames",
    "packets_lost",
    "encrypted",
    "truncated",
)


class RecordingResults:
    """The control plane's side of ``RecordingEvents``: it keeps what the recorder reports."""

    def __init__(
        self, context: ControlContext, records: RecordingRecords, retention_days: int
    ) -> None:
        self._context = context
        self._records = records
        self._retention_days = retention_days
        self._tasks: set[asyncio.Task[None]] = set()

    async def recording_finished(
        self, meeting_id: str, recording_id: str, result: dict[str, Any]
    ) -> None:
        now = self._context.clock()
        record = await self._records.get(recording_id)
        if record is None:
            # Not started through this control plane (or its row was lost): keep it anyway.
            record = RecordingRecord(
                id=recording_id,
                meeting_id=meeting_id,
                status="recording",
                options={},
                started_by="system",
                started_at=_moment(result.get("started_at")) or now,
                retention_days=self._retention_days,
            )
        failed = result.get("status") != "completed"
        reason = str(result.get("error") or "the recorder did not say why") if failed else None
        files = [
            {key: entry[key] for key in FILE_FIELDS if key in entry}
            for entry in result.get("files", [])
            if isinstance(entry, dict) and entry.get("path")
        ]
        duration = result.get("duration_s")
        finished = dataclasses.replace(
            record,
            status="failed" if failed else "completed",
            reason=reason,
            stopped_at=_moment(result.get("stopped_at")) or now,
            duration_s=float(duration) if isinstance(duration, int | float) else None,
            encrypted=bool(result.get("encrypted", record.encrypted)),
            files=files,
            details={
                "manifest": result.get("manifest"),
                "skipped_tracks": result.get("skipped_tracks", []),
            },
        )
        options = record.options
        entry = AuditEntry(
            meeting_id,
            "system",
            "recording.finished",
            now,
            target=recording_id,
            reason=reason,
            details={"status": finished.status, "files": len(files), "duration_s": duration},
        )
        await self._records.finish(
            finished,
            transcript=bool(options.get("auto_transcribe") or options.get("generate_summary")),
            summary=bool(options.get("generate_summary")),
            audit=[entry],
        )
        self._context.publish(
            "recording.finished",
            meeting_id,
            {
                "recording_id": recording_id,
                "status": finished.status,
                "reason": reason,
                "duration_s": finished.duration_s,
                "files": len(files),
                "bytes": sum(
                    entry["bytes"] for entry in files if isinstance(entry.get("bytes"), int)
                ),
            },
        )
        if failed:
            # Later, not now: the media plane may be the one calling, mid-stop.
            self._later(self._announce_failure(meeting_id, recording_id, reason or ""))

    async def transcript_ready(
        self, meeting_id: str, recording_id: str, transcript: dict[str, Any]
    ) -> None:
        saved = await self._records.save_transcript(
            meeting_id, recording_id, transcript, self._context.clock()
        )
        if not saved:
            log.info("transcript of erased recording %s dropped", recording_id)
            return
        self._context.publish(
            "transcript.ready", meeting_id, _result_data(recording_id, transcript)
        )

    async def summary_ready(
        self, meeting_id: str, recording_id: str, summary: dict[str, Any]
    ) -> None:
        saved = await self._records.save_summary(
            meeting_id, recording_id, summary, self._context.clock()
        )
        if not saved:
            log.info("summary of erased recording %s dropped", recording_id)
            return
        self._context.publish("summary.ready", meeting_id, _result_data(recording_id, summary))

    async def close(self) -> None:
        """Cancel what is still pending (at shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _announce_failure(self, meeting_id: str, recording_id: str, reason: str) -> None:
        media = self._context.media
        frame = {
            "type": "recording",
            "state": "failed",
            "recording_id": recording_id,
            "reason": reason,
        }
        await media.send(meeting_id, frame, "all")
        # Only this recording can be the one running at the media plane: a newer
        # one would have its own row in 'recording'.
        if await self._records.running(meeting_id) is None:
            await media.stop_recording(meeting_id)

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("announcing a failed recording failed", exc_info=task.exception())


def _moment(value: object) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def _result_data(recording_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """A transcript's or summary's webhook data: which recording, completed or failed."""
    failed = result.get("status") == "failed"
    return {
        "recording_id": recording_id,
        "status": "failed" if failed else "completed",
        "error": result.get("error") if failed else None,
    }
