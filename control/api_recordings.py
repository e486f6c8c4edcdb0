"""The REST API of recordings, transcripts and summaries, and the signed file downloads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO

from aiohttp import web

from .archive import RecordingArchive
from .auth import Guard
from .bodies import read_optional_json_object
from .context import rfc3339
from .errors import InvalidParameter, NotFound, NotReady
from .params import allow_only
from .recording_options import parse_recording_request
from .recording_store import RecordingRecord, ResultRecord
from .recordings import Recordings
from .signed_links import LinkSigner

__all__ = ["RecordingsApi", "file_id"]

log = logging.getLogger(__name__)

MEETING = "/api/v1/meetings/{meeting_id}"
FILE = "/api/v1/recordings/{recording_id}/files/{file_id}"
_CHUNK_BYTES = 256 * 1024
_MEDIA_TYPES = {
    "ogg": "audio/ogg",
    "webm": "video/webm",
    "mp4": "video/mp4",
    "mka": "audio/x-matroska",
    "mkv": "video/x-matroska",
}
_SUBTITLES = {
    "vtt": "text/vtt",
    "srt": "application/x-subrip",
}


# The store's transcript or summary query: (meeting id, recording id or None).
_ResultQuery = Callable[[str, str | None], Awaitable[ResultRecord | None]]


def file_id(entry: dict[str, Any]) -> str:
    """A file's id in its recording: its name in the recording's folder."""
    return str(entry["path"]).rsplit("/", 1)[-1]


class RecordingsApi:
    """HTTP handlers for recordings and what is made of them."""

    def __init__(
        self,
        recordings: Recordings,
        guard: Guard,
        signer: LinkSigner,
        *,
        public_url: str,
        link_ttl_s: int,
        max_body_bytes: int,
    ) -> None:
        self._recordings = recordings
        self._archive: RecordingArchive = recordings.archive
        self._guard = guard
        self._signer = signer
        self._public_url = public_url
        self._link_ttl_s = link_ttl_s
        self._max_body_bytes = max_body_bytes

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{MEETING}/recording/start", self.start),
            web.post(f"{MEETING}/recording/stop", self.stop),
            web.get(f"{MEETING}/recordings", self.list_recordings),
            web.delete(f"{MEETING}/recordings/{{recording_id}}", self.erase),
            web.get(f"{MEETING}/transcript", self.transcript),
            web.get(f"{MEETING}/summary", self.summary),
            web.get(FILE, self.download),
        ]

    async def start(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        caller = await self._guard.require_participant(request, meeting_id)
        body = await read_optional_json_object(request, self._max_body_bytes)
        wanted = parse_recording_request(body, self._recordings.defaults)
        record = await self._recordings.start(meeting_id, caller, wanted)
        return web.json_response(self.render(record), status=201)

    async def stop(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        caller = await self._guard.require_participant(request, meeting_id)
        record = await self._recordings.stop(meeting_id, caller)
        return web.json_response(self.render(record))

    async def list_recordings(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        await self._guard.require_host(request, meeting_id)
        allow_only(request, ())
        records = await self._recordings.of_meeting(meeting_id)
        return web.json_response({"recordings": [self.render(record) for record in records]})

    async def erase(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        caller = await self._guard.require_host(request, meeting_id)
        await self._recordings.erase(meeting_id, request.match_info["recording_id"], caller)
        return web.Response(status=204)

    async def transcript(self, request: web.Request) -> web.StreamResponse:
        meeting_id = request.match_info["meeting_id"]
        await self._guard.require_participant(request, meeting_id)
        allow_only(request, ("recording_id", "format"))
        fmt = request.query.get("format", "json")
        if fmt not in ("json", "vtt", "srt"):
            raise InvalidParameter("'format' must be json, vtt or srt", parameter="format")
        found = await self._result(
            request, self._recordings.records.transcript, meeting_id, "transcript"
        )
        if fmt == "json":
            return web.json_response(_render_transcript(found))
        if found.status != "completed":
            raise NotReady(
                f"the transcript is {found.status}", status=found.status, error=found.error
            )
        text = self._archive.subtitles(
            {"segments": found.body.get("segments", [])}, "vtt" if fmt == "vtt" else "srt"
        )
        return web.Response(
            text=text,
            content_type=_SUBTITLES[fmt],
            headers={
                "Content-Disposition": (
                    f'attachment; filename="transcript-{found.recording_id}.{fmt}"'
                )
            },
        )

    async def summary(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        await self._guard.require_participant(request, meeting_id)
        allow_only(request, ("recording_id",))
        found = await self._result(request, self._recordings.records.summary, meeting_id, "summary")
        return web.json_response(
            {
                "recording_id": found.recording_id,
                "meeting_id": found.meeting_id,
                "status": found.status,
                "error": found.error,
                "summary": found.body if found.status == "completed" else None,
                "created_at": rfc3339(found.created_at),
                "updated_at": rfc3339(found.updated_at),
            }
        )

    async def download(self, request: web.Request) -> web.StreamResponse:
        """One recorded file, to whoever holds a current signed link (no other credential)."""
        self._signer.verify(request.path, request.query.get("expires"), request.query.get("sig"))
        allow_only(request, ("expires", "sig"))
        record = await self._recordings.get(request.match_info["recording_id"])
        wanted = request.match_info["file_id"]
        entry = next((e for e in record.files if file_id(e) == wanted), None)
        if entry is None:
            raise NotFound(f"recording '{record.id}' has no file '{wanted}'", file_id=wanted)
        try:
            reader = await asyncio.to_thread(self._archive.open, str(entry["path"]))
        except FileNotFoundError as exc:
            raise NotFound(f"file '{wanted}' is no longer stored", file_id=wanted) from exc
        try:
            return await self._stream(request, reader, wanted, entry.get("bytes"))
        finally:
            await asyncio.to_thread(reader.close)

    async def _stream(
        self, request: web.Request, reader: BinaryIO, name: str, size: object
    ) -> web.StreamResponse:
        extension = name.rsplit(".", 1)[-1]
        response = web.StreamResponse(
            headers={
                "Content-Type": _MEDIA_TYPES.get(extension, "application/octet-stream"),
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "private, no-store",
            }
        )
        if isinstance(size, int):
            response.content_length = size
        await response.prepare(request)
        while True:
            try:
                chunk = await asyncio.to_thread(reader.read, _CHUNK_BYTES)
            except Exception:  # noqa: BLE001 - headers are sent: the body can only stop short
                log.exception("reading %s for a download failed", name)
                response.force_close()
                return response
            if not chunk:
                break
            await response.write(chunk)
        await response.write_eof()
        return response

    async def _result(
        self, request: web.Request, query: _ResultQuery, meeting_id: str, what: str
    ) -> ResultRecord:
        found = await query(meeting_id, request.query.get("recording_id"))
        if found is None:
            await self._recordings.of_meeting(meeting_id)  # MeetingNotFound first
            raise NotFound(f"the meeting has no {what}", meeting_id=meeting_id)
        return found

    def render(self, record: RecordingRecord) -> dict[str, Any]:
        """The API's JSON form of a recording, with a signed download link per file."""
        expires_at = record.expires_at()
        return {
            "id": record.id,
            "meeting_id": record.meeting_id,
            "status": record.status,
            "reason": record.reason,
            "started_by": record.started_by,
            "started_at": rfc3339(record.started_at),
            "stopped_at": None if record.stopped_at is None else rfc3339(record.stopped_at),
            "duration_s": record.duration_s,
            "options": record.options,
            "encrypted": record.encrypted,
            "retention_days": record.retention_days,
            "expires_at": None if expires_at is None else rfc3339(expires_at),
            "transcript_status": record.transcript_status,
            "summary_status": record.summary_status,
            "files": [self._file(record, entry) for entry in record.files],
        }

    def _file(self, record: RecordingRecord, entry: dict[str, Any]) -> dict[str, Any]:
        name = file_id(entry)
        link, expires = self._signer.sign(
            FILE.format(recording_id=record.id, file_id=name), self._link_ttl_s
        )
        return {
            "id": name,
            "participant_id": entry.get("participant_id"),
            "name": entry.get("name"),
            "kind": entry.get("kind"),
            "source": entry.get("source"),
            "codec": entry.get("codec"),
            "container": entry.get("container"),
            "bytes": entry.get("bytes"),
            "sha256": entry.get("sha256"),
            "duration_s": entry.get("duration_s"),
            "start_offset_s": entry.get("start_offset_s"),
            "truncated": bool(entry.get("truncated", False)),
            "download_url": self._public_url + link,
            "download_expires_at": rfc3339(expires),
        }


def _render_transcript(found: ResultRecord) -> dict[str, Any]:
    body = found.body
    return {
        "recording_id": found.recording_id,
        "meeting_id": found.meeting_id,
        "status": found.status,
        "error": found.error,
        "language": body.get("language"),
        "segments": body.get("segments", []),
        "text": body.get("text", ""),
        "duration_s": body.get("duration_s"),
        "real_time_factor": body.get("real_time_factor"),
        "created_at": rfc3339(found.created_at),
        "updated_at": rfc3339(found.updated_at),
    }
