"""Retention: delete recordings past their age, and erase one on request (GDPR).

A recording's age comes from ``started_at`` in its ``manifest.json``; its
limit is the manifest's ``retention_days`` (set per recording) or the
configured default; 0 keeps it forever. A folder with no manifest (a recording
that crashed before finishing) is deleted once nothing in it has changed for
the default period plus a day, which never touches a running recording. Every
deletion is returned as a :class:`DeletedRecording` so the caller (the control
plane) can write its audit entry and drop the rows it keeps.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .errors import StorageError
from .storage import Storage, recording_folder

__all__ = [
    "DeletedRecording",
    "apply_retention",
    "erase_recording",
    "run_retention",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
_DAY_S = 86400.0


@dataclass(frozen=True)
class DeletedRecording:
    """One recording removed from storage, for the audit log."""

    folder: str
    meeting_id: str | None
    recording_id: str | None
    started_at: str | None
    reason: str  # "expired", "orphaned" or "erased"
    files: tuple[str, ...]
    bytes: int


def apply_retention(
    storage: Storage, default_days: int, now: datetime.datetime | None = None
) -> list[DeletedRecording]:
    """Delete every recording older than its retention; return what was deleted."""
    now = now or datetime.datetime.now(datetime.UTC)
    folders: dict[str, list[Any]] = {}
    for obj in storage.list():
        parts = obj.name.split("/")
        if len(parts) == 3:
            folders.setdefault("/".join(parts[:2]), []).append(obj)
    deleted = []
    for folder, objects in sorted(folders.items()):
        try:
            reason, manifest = _verdict(storage, folder, objects, default_days, now)
        except (OSError, StorageError, ValueError) as exc:
            logger.warning("retention: cannot judge %s: %s", folder, exc)
            continue
        if reason is not None:
            deleted.append(_delete(storage, folder, manifest, reason))
    return deleted


def erase_recording(
    storage: Storage, meeting_id: str, recording_id: str
) -> DeletedRecording | None:
    """Delete one recording now, whatever its age; None if it has no files."""
    folder = recording_folder(meeting_id, recording_id)
    if not storage.list(folder):
        return None
    try:
        manifest = _manifest(storage, folder)
    except (OSError, StorageError, ValueError):
        manifest = None
    return _delete(storage, folder, manifest, "erased")


async def run_retention(
    storage: Storage,
    default_days: int,
    interval_s: float,
    on_deleted: Callable[[list[DeletedRecording]], Awaitable[None]],
) -> None:
    """Apply retention every ``interval_s`` (in a thread) until cancelled."""
    while True:
        try:
            deleted = await asyncio.to_thread(apply_retention, storage, default_days)
            if deleted:
                await on_deleted(deleted)
        except Exception:  # noqa: BLE001 - the job must survive one bad round
            logger.exception("retention round failed")
        await asyncio.sleep(interval_s)


def _verdict(
    storage: Storage,
    folder: str,
    objects: list[Any],
    default_days: int,
    now: datetime.datetime,
) -> tuple[str | None, dict[str, Any] | None]:
    names = {obj.name.rsplit("/", 1)[1] for obj in objects}
    if MANIFEST_NAME not in names:
        newest = max(obj.modified_at for obj in objects)
        if default_days and now.timestamp() - newest > (default_days + 1) * _DAY_S:
            return "orphaned", None
        return None, None
    manifest = _manifest(storage, folder)
    days = manifest.get("retention_days")
    if not isinstance(days, int) or isinstance(days, bool) or days < 0:
        days = default_days
    if days == 0:
        return None, manifest
    started = datetime.datetime.fromisoformat(str(manifest["started_at"]))
    if started.tzinfo is None:
        started = started.replace(tzinfo=datetime.UTC)
    if now - started >= datetime.timedelta(days=days):
        return "expired", manifest
    return None, manifest


def _manifest(storage: Storage, folder: str) -> dict[str, Any]:
    data = json.loads(storage.read_bytes(f"{folder}/{MANIFEST_NAME}"))
    if not isinstance(data, dict) or "started_at" not in data:
        raise ValueError("manifest has no started_at")
    return data


def _delete(
    storage: Storage, folder: str, manifest: dict[str, Any] | None, reason: str
) -> DeletedRecording:
    size = sum(obj.size for obj in storage.list(folder))
    names = storage.delete_prefix(folder)
    logger.info("retention: deleted %s (%s, %d files)", folder, reason, len(names))
    manifest = manifest or {}
    return DeletedRecording(
        folder=folder,
        meeting_id=manifest.get("meeting_id"),
        recording_id=manifest.get("recording_id"),
        started_at=manifest.get("started_at"),
        reason=reason,
        files=tuple(names),
        bytes=size,
    )
