"""Recordings: started and stopped by policy, listed, erased on request, expired by age.

* ``start``: by whoever the meeting's ``recording_permissions`` allows (the
  admin unless it is ``none``), in a meeting that has not ended, with someone
  connected (for the REST API; a host asking over signaling is connected by
  definition). The row is written first (a unique index makes a second
  running recording of a meeting impossible), then the media plane taps the
  meeting; if it cannot, the row is dropped again. Audited.
* ``stop``: the media plane closes the files; its recorder reports them
  (:mod:`control.recording_events`) before the call returns. Audited.
* ``erase`` (GDPR): the files, the transcript and the summary, at once, with
  an audit entry saying what was removed. A deleted meeting's recordings are
  erased the same way.
* ``apply_retention``: recordings, transcripts and summaries older than
  their ``retention_days`` are deleted, and so is what the storage holds past
  its age with no row (the recorder's own manifest-based retention); each is
  audited. :meth:`Recordings.run_retention` repeats it every interval.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .archive import RecordingArchive
from .audit import AuditEntry
from .auth import Caller
from .context import ControlContext
from .errors import (
    AlreadyRecording,
    Conflict,
    Forbidden,
    InvalidField,
    MeetingEnded,
    NotConnected,
    NotRecording,
    RecordingNotFound,
)
from .policy import permissions_for
from .recording_options import RecordingRequest
from .recording_store import RecordingRecord, RecordingRecords
from .store import new_id

__all__ = ["Recordings"]

log = logging.getLogger(__name__)

SYSTEM = "system"


class Recordings:
    """The recording lifecycle on top of the store, the media plane and the recorder's files."""

    def __init__(
        self,
        context: ControlContext,
        records: RecordingRecords,
        archive: RecordingArchive,
        *,
        defaults: RecordingRequest,
        retention_days: int,
    ) -> None:
        self._context = context
        self.records = records
        self.archive = archive
        self.defaults = defaults
        self.retention_days = retention_days

    async def start(
        self,
        meeting_id: str,
        caller: Caller,
        request: RecordingRequest | None = None,
        *,
        require_connected: bool = True,
    ) -> RecordingRecord:
        """Record the meeting from now on; the record of the running recording."""
        context = self._context
        meeting = await context.meeting(meeting_id)
        await self._check_permission(meeting_id, caller)
        if meeting.status == "ended":
            raise MeetingEnded("the meeting has ended", meeting_id=meeting_id)
        request = request or self.defaults
        if request.encryption_enabled and not self.archive.can_encrypt:
            raise InvalidField(
                "'encryption_enabled': this server has no encryption key (recorder.encryption_key)",
                field="encryption_enabled",
            )
        if require_connected and not context.media.roster(meeting_id):
            raise NotConnected("nobody is connected to the meeting: there is nothing to record")
        options = request.to_options(self.retention_days)
        record = RecordingRecord(
            id=new_id(16),
            meeting_id=meeting_id,
            status="recording",
            options=options,
            started_by=caller.actor,
            started_at=context.clock(),
            retention_days=int(options["retention_days"]),
            encrypted=request.encryption_enabled,
        )
        if not await self.records.start(record):
            running = await self.records.running(meeting_id)
            raise AlreadyRecording(
                "the meeting is being recorded already",
                recording_id=running.id if running else None,
            )
        try:
            started = await context.media.start_recording(meeting_id, record.id, options)
        except ValueError as exc:  # the recorder refused the options (InvalidRecordingOptions)
            await self.records.discard(record.id)
            raise InvalidField(f"the recorder refused this configuration: {exc}") from exc
        except BaseException:
            await self.records.discard(record.id)
            raise
        if not started:
            await self.records.discard(record.id)
            raise Conflict(
                "the meeting's media server did not start recording "
                "(nobody connected, no recorder, or a recording it has not closed)"
            )
        await context.store.record_audit(
            AuditEntry(
                meeting_id,
                caller.actor,
                "recording.start",
                record.started_at,
                target=record.id,
                details={"options": options},
            )
        )
        context.publish(
            "recording.started",
            meeting_id,
            {"recording_id": record.id, "started_by": caller.actor, "options": options},
        )
        return record

    async def stop(self, meeting_id: str, caller: Caller) -> RecordingRecord:
        """Stop the meeting's recording; its record once the recorder has reported the files."""
        await self._context.meeting(meeting_id)
        await self._check_permission(meeting_id, caller)
        recording_id = await self._context.media.stop_recording(meeting_id)
        if recording_id is None:
            raise NotRecording("the meeting is not being recorded", meeting_id=meeting_id)
        await self._context.store.record_audit(
            AuditEntry(
                meeting_id, caller.actor, "recording.stop", self._context.clock(), recording_id
            )
        )
        record = await self.records.get(recording_id)
        if record is None:
            raise RecordingNotFound(
                f"recording '{recording_id}' was stopped but has no record",
                recording_id=recording_id,
            )
        return record

    async def of_meeting(self, meeting_id: str) -> list[RecordingRecord]:
        """The meeting's recordings, oldest first (MeetingNotFound for no such meeting)."""
        records = await self.records.of_meeting(meeting_id)
        if not records:
            await self._context.meeting(meeting_id)
        return records

    async def get(self, recording_id: str) -> RecordingRecord:
        record = await self.records.get(recording_id)
        if record is None:
            raise RecordingNotFound(
                f"no recording with id '{recording_id}'", recording_id=recording_id
            )
        return record

    async def erase(self, meeting_id: str, recording_id: str, caller: Caller) -> dict[str, Any]:
        """Delete a recording's files, transcript and summary now (GDPR erasure)."""
        record = await self.records.get(recording_id)
        if record is None or record.meeting_id != meeting_id:
            raise RecordingNotFound(
                f"meeting '{meeting_id}' has no recording '{recording_id}'",
                recording_id=recording_id,
            )
        if record.status == "recording":
            raise AlreadyRecording(
                "the recording is still running: stop it first", recording_id=recording_id
            )
        return await self._delete(record, caller.actor, "recording.erase", "erased on request")

    async def meeting_gone(self, meeting_id: str) -> None:
        """After a meeting ended or was deleted: a deleted meeting's recordings are erased."""
        if await self._context.store.get_meeting(meeting_id) is not None:
            return
        for record in await self.records.of_meeting(meeting_id):
            await self._delete(record, SYSTEM, "recording.erase", "the meeting was deleted")

    async def apply_retention(self) -> int:
        """Delete what is older than its retention; how many recordings were deleted."""
        now = self._context.clock()
        deleted = 0
        for record in await self.records.expired(now):
            reason = f"older than its retention of {record.retention_days} days"
            await self._delete(record, SYSTEM, "recording.expire", reason)
            deleted += 1
        # What the storage holds past its age without a row here (or a folder
        # whose recording crashed before it had a manifest).
        for erased in await asyncio.to_thread(self.archive.expire, now):
            recording_id = erased.get("recording_id")
            meeting_id = erased.get("meeting_id") or str(erased.get("folder", "")).split("/")[0]
            entry = AuditEntry(
                meeting_id,
                SYSTEM,
                "recording.expire",
                now,
                target=recording_id,
                reason=f"the storage's retention: {erased.get('reason')}",
                details=_erased_details(erased),
            )
            if recording_id:
                await self.records.delete(recording_id, [entry])
            else:
                await self._context.store.record_audit(entry)
            deleted += 1
        return deleted

    async def run_retention(self, interval_s: float) -> None:
        """Apply retention now and every ``interval_s`` seconds until cancelled."""
        while True:
            try:
                deleted = await self.apply_retention()
                if deleted:
                    log.info("retention deleted %d recordings", deleted)
            except Exception:  # noqa: BLE001 - the job must survive one bad round
                log.exception("retention round failed")
            await asyncio.sleep(interval_s)

    async def recover(self) -> None:
        """After a restart of the embedded media plane: what was under way is lost."""
        failed = await self.records.fail_unfinished(self._context.clock())
        if failed:
            log.warning("%d recordings, transcripts or summaries were cut by a restart", failed)

    async def _check_permission(self, meeting_id: str, caller: Caller) -> None:
        policy = await self._context.policy(meeting_id)
        participant = caller.participant
        if participant is None:
            if policy.recording_permissions == "none":
                raise Forbidden(
                    "recording is off in this meeting's policy", rule="recording_permissions"
                )
            return
        if participant.status != "joined":
            raise Forbidden("you are not a participant of this meeting")
        if not permissions_for(participant.role, policy).record:
            raise Forbidden("you may not record in this meeting", rule="recording_permissions")

    async def _delete(
        self, record: RecordingRecord, actor: str, action: str, reason: str
    ) -> dict[str, Any]:
        erased = await asyncio.to_thread(self.archive.erase, record.meeting_id, record.id)
        details = {
            **_erased_details(erased),
            "transcript": record.transcript_status is not None,
            "summary": record.summary_status is not None,
        }
        entry = AuditEntry(
            record.meeting_id,
            actor,
            action,
            self._context.clock(),
            target=record.id,
            reason=reason,
            details=details,
        )
        await self.records.delete(record.id, [entry])
        return details


def _erased_details(erased: dict[str, Any] | None) -> dict[str, Any]:
    if erased is None:
        return {"files": 0, "bytes": 0}
    return {"files": len(erased.get("files", [])), "bytes": int(erased.get("bytes", 0))}
