"""The OpenAPI description of recordings, transcripts, summaries and downloads.

Merged into the document by :func:`control.openapi.openapi_document`; the
handlers are :mod:`control.api_recordings`.
"""

from __future__ import annotations

from typing import Any

from .openapi import _error, _json, _meeting_path, _op, _path_parameter
from .openapi_schemas import _NULLABLE_STRING, _NULLABLE_TIMESTAMP, _STRING, _TIMESTAMP, ref
from .recording_options import FORMATS, MAX_RETENTION_DAYS

__all__ = ["RECORDING_PATHS", "RECORDING_SCHEMAS"]

_M = "/api/v1/meetings/{meeting_id}"
_RECORDING_ID = _path_parameter("recording_id")
_RESULT_STATUS = {"enum": ["pending", "completed", "failed"]}
_NULLABLE_RESULT_STATUS = {"enum": ["pending", "completed", "failed", None]}
_NUMBER = {"type": ["number", "null"]}
_RECORDING_QUERY = {
    "name": "recording_id",
    "in": "query",
    "schema": {"type": "string"},
    "description": "Which recording's; default: the meeting's latest that has one.",
}
_PERMISSION = _error(
    "Not allowed by the meeting's `recording_permissions` (`forbidden`, "
    "`details.rule`), or not a participant."
)


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


def _flag(description: str, default: str) -> dict[str, Any]:
    return {"type": "boolean", "description": f"{description} Default: `[recorder] {default}`."}


RECORDING_SCHEMAS: dict[str, Any] = {
    "RecordingStart": {
        **_object(
            {
                "include_audio": _flag("Record participants' microphones.", "include_audio"),
                "include_video": _flag("Record cameras.", "include_video"),
                "include_screen_share": _flag("Record screen shares.", "include_screen_share"),
                "format": {
                    "enum": list(FORMATS),
                    "description": "`webm`: Opus in Ogg, VP8 in WebM, H.264 in MP4 (no "
                    "transcoding); `mkv`: all in Matroska.",
                },
                "auto_transcribe": _flag(
                    "Transcribe each participant's audio after the recording.", "auto_transcribe"
                ),
                "generate_summary": _flag(
                    "Summarize the transcript (extractive, or the configured LLM).",
                    "generate_summary",
                ),
                "language": {
                    "type": ["string", "null"],
                    "maxLength": 16,
                    "description": "Language code of the speech, e.g. `en`; null: the model's.",
                },
                "retention_days": {
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "maximum": MAX_RETENTION_DAYS,
                    "description": "Days before the recording, its transcript and summary are "
                    "deleted; 0: kept until erased; null: `[recorder] retention_days`.",
                },
                "encryption_enabled": {
                    "type": "boolean",
                    "description": "Encrypt the files at rest (AES-256-GCM); needs "
                    "`[recorder] encryption_key`.",
                },
                "mixed_audio": _flag(
                    "Also write everyone's audio mixed in one file.", "mixed_audio"
                ),
                "live_captions": _flag(
                    "Send captions to the meeting while it is recorded (`caption` frames).",
                    "live_captions",
                ),
            },
            [],
        ),
        "additionalProperties": False,
    },
    "RecordingFile": _object(
        {
            "id": {**_STRING, "description": "The file's name in its recording."},
            "participant_id": _NULLABLE_STRING,
            "name": {**_NULLABLE_STRING, "description": "The participant's name."},
            "kind": {"enum": ["audio", "video"]},
            "source": {**_STRING, "description": "microphone, camera, screen or mix."},
            "codec": _STRING,
            "container": _STRING,
            "bytes": {"type": ["integer", "null"]},
            "sha256": _NULLABLE_STRING,
            "duration_s": _NUMBER,
            "start_offset_s": {
                **_NUMBER,
                "description": "Where the file starts on the recording's timeline (a late "
                "joiner's file starts later).",
            },
            "truncated": {
                "type": "boolean",
                "description": "Cut short by a failure; playable up to it.",
            },
            "download_url": {
                **_STRING,
                "description": "A signed link, valid until `download_expires_at`, that needs "
                "no other credential.",
            },
            "download_expires_at": _TIMESTAMP,
        }
    ),
    "Recording": _object(
        {
            "id": _STRING,
            "meeting_id": _STRING,
            "status": {"enum": ["recording", "completed", "failed"]},
            "reason": {**_NULLABLE_STRING, "description": "Why it failed."},
            "started_by": {**_STRING, "description": "`admin` or `participant:<id>`."},
            "started_at": _TIMESTAMP,
            "stopped_at": _NULLABLE_TIMESTAMP,
            "duration_s": _NUMBER,
            "options": {"type": "object", "description": "The configuration it was made with."},
            "encrypted": {"type": "boolean"},
            "retention_days": {"type": "integer"},
            "expires_at": {
                **_NULLABLE_TIMESTAMP,
                "description": "When retention deletes it; null: kept until erased.",
            },
            "transcript_status": _NULLABLE_RESULT_STATUS,
            "summary_status": _NULLABLE_RESULT_STATUS,
            "files": {"type": "array", "items": ref("RecordingFile")},
        }
    ),
    "RecordingList": _object({"recordings": {"type": "array", "items": ref("Recording")}}),
    "TranscriptSegment": _object(
        {
            "speaker": _STRING,
            "participant_id": _STRING,
            "start": {"type": "number", "description": "Seconds from the recording's start."},
            "end": {"type": "number"},
            "text": _STRING,
        }
    ),
    "Transcript": _object(
        {
            "recording_id": _STRING,
            "meeting_id": _STRING,
            "status": _RESULT_STATUS,
            "error": _NULLABLE_STRING,
            "language": _NULLABLE_STRING,
            "segments": {"type": "array", "items": ref("TranscriptSegment")},
            "text": {**_STRING, "description": "`Speaker: text` lines in time order."},
            "duration_s": _NUMBER,
            "real_time_factor": {
                **_NUMBER,
                "description": "Seconds of processing per second of audio.",
            },
            "created_at": _TIMESTAMP,
            "updated_at": _TIMESTAMP,
        }
    ),
    "Summary": _object(
        {
            "recording_id": _STRING,
            "meeting_id": _STRING,
            "status": _RESULT_STATUS,
            "error": _NULLABLE_STRING,
            "summary": {
                "type": ["object", "null"],
                "description": "key_points, decisions, action_items ({text, owner, due}), "
                "topics ({topic, seconds}), speaking_time, sentiment, engagement, generator "
                "(`extractive` or `llm`; `llm_error` when the endpoint failed).",
            },
            "created_at": _TIMESTAMP,
            "updated_at": _TIMESTAMP,
        }
    ),
}

_RECORDING = _json(ref("Recording"), "The recording.")

RECORDING_PATHS: dict[str, Any] = {
    f"{_M}/recording/start": _meeting_path(
        post=_op(
            "startRecording",
            "Record the meeting: every participant's tracks in their own files; everyone "
            "connected is told (`recording` frame).",
            "participant",
            {
                "201": _RECORDING,
                "403": _PERMISSION,
                "409": _error(
                    "Already recording (`already_recording`), nobody connected "
                    "(`not_connected`), or the meeting has ended (`meeting_ended`)."
                ),
            },
            body="RecordingStart",
            optional_body=True,
            description="Who may: the meeting's `recording_permissions` (`host`: hosts and "
            "the admin; `all`: anyone let in; `none`: nobody). Audited.",
        )
    ),
    f"{_M}/recording/stop": _meeting_path(
        post=_op(
            "stopRecording",
            "Stop the recording; answers once its files are closed (status `completed` or "
            "`failed` with the reason). Transcript and summary follow.",
            "participant",
            {
                "200": _RECORDING,
                "403": _PERMISSION,
                "409": _error("Not recording (`not_recording`)."),
            },
        )
    ),
    f"{_M}/recordings": _meeting_path(
        get=_op(
            "listRecordings",
            "The meeting's recordings, oldest first, with their files (size, duration, "
            "offset, SHA-256) and signed download links.",
            "host",
            {"200": _json(ref("RecordingList"), "")},
        )
    ),
    f"{_M}/recordings/{{recording_id}}": {
        "parameters": [_path_parameter("meeting_id"), _RECORDING_ID],
        "delete": _op(
            "eraseRecording",
            "Erase a recording now (GDPR): its files, transcript and summary. Audited.",
            "host",
            {
                "204": {"description": "Erased."},
                "409": _error("Still recording: stop it first (`already_recording`)."),
            },
        ),
    },
    f"{_M}/transcript": _meeting_path(
        get=_op(
            "transcript",
            "The transcript: every segment with its speaker, in time order; or as subtitles.",
            "participant",
            {
                "200": {
                    "description": "JSON (`status` pending while it is made), WebVTT or SRT.",
                    "content": {
                        "application/json": {"schema": ref("Transcript")},
                        "text/vtt": {},
                        "application/x-subrip": {},
                    },
                },
                "409": _error("Subtitles of a transcript still pending or failed (`not_ready`)."),
            },
            parameters=[
                _RECORDING_QUERY,
                {
                    "name": "format",
                    "in": "query",
                    "schema": {"enum": ["json", "vtt", "srt"], "default": "json"},
                },
            ],
        )
    ),
    f"{_M}/summary": _meeting_path(
        get=_op(
            "summary",
            "The summary of a recording's transcript.",
            "participant",
            {"200": _json(ref("Summary"), "`status` pending while it is made.")},
            parameters=[_RECORDING_QUERY],
        )
    ),
    "/api/v1/recordings/{recording_id}/files/{file_id}": {
        "parameters": [_RECORDING_ID, _path_parameter("file_id")],
        "get": _op(
            "downloadRecordingFile",
            "One recorded file (decrypted when stored encrypted), through a signed link from "
            "the recordings list.",
            "public",
            {
                "200": {"description": "The file.", "content": {"application/octet-stream": {}}},
                "403": _error("The signature does not match (`invalid_signature`)."),
                "410": _error("The link has expired (`link_expired`)."),
            },
            parameters=[
                {"name": "expires", "in": "query", "required": True, "schema": _STRING},
                {"name": "sig", "in": "query", "required": True, "schema": _STRING},
            ],
        ),
    },
}
