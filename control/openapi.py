"""The OpenAPI 3.1 description of the control plane's HTTP interface.

Written by hand to match :mod:`control.api`, :mod:`control.webpages` and
:mod:`control.app`; ``tests/control/test_api.py`` checks that every route of
the application is described here, and nothing else, and that responses
carry the fields the schemas list.
"""

from __future__ import annotations

from typing import Any

from .bodies import DESCRIPTION_MAX, EMAIL_MAX, IDENTITY_MAX, NAME_MAX, TITLE_MAX
from .meetings import MAX_PAGE_SIZE

__all__ = ["openapi_document"]

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _request(schema_name: str) -> dict[str, Any]:
    return {"required": True, "content": {_JSON: {"schema": _ref(schema_name)}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_MEETING_ID = {
    "name": "meeting_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_NOT_FOUND = _error("No such meeting (`meeting_not_found`).")
_UNAUTHORIZED = _error("Missing or wrong API key (`unauthorized`).")
_BAD_REQUEST = _error(
    "Malformed body: `invalid_json`, `unknown_field`, `invalid_field` (details name the field)."
)
_TOO_LARGE = _error("The body is larger than `server.max_body_bytes` (`payload_too_large`).")
_JOINED = _json(_ref("JoinResponse"), "Joined: a token and where to connect with it.")
_ENDED = _error("The meeting has ended (`meeting_ended`).")

_NULLABLE_STRING = {"type": ["string", "null"]}
_TIMESTAMP = {"type": "string", "format": "date-time"}
_NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                },
            }
        },
    },
    "Meeting": {
        "type": "object",
        "required": [
            "id",
            "title",
            "description",
            "host_identity",
            "scheduled_start",
            "status",
            "join_url",
            "created_at",
            "updated_at",
        ],
        "properties": {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "host_identity": _NULLABLE_STRING,
            "scheduled_start": _NULLABLE_TIMESTAMP,
            "status": {"enum": ["scheduled", "live", "ended"]},
            "join_url": {"type": "string", "format": "uri"},
            "created_at": _TIMESTAMP,
            "updated_at": _TIMESTAMP,
        },
    },
    "MeetingCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["title"],
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
            "description": {"type": "string", "maxLength": DESCRIPTION_MAX},
            "scheduled_start": {**_TIMESTAMP, "description": "With a UTC offset, e.g. `Z`."},
            "host_identity": {"type": "string", "maxLength": IDENTITY_MAX},
        },
    },
    "MeetingUpdate": {
        "type": "object",
        "additionalProperties": False,
        "description": "Absent fields keep their value; `null` clears an optional one. "
        "Status only moves forward: scheduled → live → ended.",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
            "description": {"type": "string", "maxLength": DESCRIPTION_MAX},
            "scheduled_start": _NULLABLE_TIMESTAMP,
            "host_identity": {"type": ["string", "null"], "maxLength": IDENTITY_MAX},
            "status": {"enum": ["scheduled", "live", "ended"]},
        },
    },
    "MeetingList": {
        "type": "object",
        "required": ["meetings", "next_cursor"],
        "properties": {
            "meetings": {"type": "array", "items": _ref("Meeting")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        },
    },
    "JoinRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
            "email": {"type": "string", "format": "email", "maxLength": EMAIL_MAX},
            "role": {"enum": ["host", "participant", "viewer"], "default": "participant"},
        },
    },
    "GuestJoinRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": NAME_MAX,
                "description": "Trimmed; no control characters.",
            }
        },
    },
    "IceServer": {
        "type": "object",
        "required": ["urls"],
        "properties": {
            "urls": {"type": "array", "items": {"type": "string"}},
            "username": {"type": "string"},
            "credential": {"type": "string"},
        },
    },
    "JoinResponse": {
        "type": "object",
        "required": [
            "participant_id",
            "meeting_id",
            "meeting_title",
            "name",
            "role",
            "token",
            "signaling_url",
            "ice_servers",
            "status",
        ],
        "properties": {
            "participant_id": {"type": "string"},
            "meeting_id": {"type": "string"},
            "meeting_title": {"type": "string"},
            "name": {"type": "string"},
            "role": {"enum": ["host", "participant", "viewer"]},
            "token": {
                "type": "string",
                "description": "Signed join token (JWT, HS256); send it in the signaling "
                "`join` frame.",
            },
            "signaling_url": {"type": "string", "format": "uri"},
            "ice_servers": {"type": "array", "items": _ref("IceServer")},
            "status": {"const": "joined"},
        },
    },
}

_PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness: the process serves HTTP.",
            "security": [],
            "responses": {
                "200": _json(
                    {"type": "object", "properties": {"status": {"const": "ok"}}}, "Alive."
                )
            },
        }
    },
    "/api/v1/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document.",
            "security": [],
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document.")},
        }
    },
    "/api/v1/meetings": {
        "post": {
            "operationId": "createMeeting",
            "summary": "Create a meeting.",
            "requestBody": _request("MeetingCreate"),
            "responses": {
                "201": _json(_ref("Meeting"), "Created."),
                "400": _BAD_REQUEST,
                "401": _UNAUTHORIZED,
                "413": _TOO_LARGE,
            },
        },
        "get": {
            "operationId": "listMeetings",
            "summary": "List meetings, newest first, one page at a time.",
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_PAGE_SIZE,
                        "default": 20,
                    },
                },
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": _json(_ref("MeetingList"), "A page of meetings."),
                "400": _error("Bad `limit` or `cursor`, or an unknown parameter."),
                "401": _UNAUTHORIZED,
            },
        },
    },
    "/api/v1/meetings/{meeting_id}": {
        "parameters": [_MEETING_ID],
        "get": {
            "operationId": "getMeeting",
            "summary": "Get a meeting.",
            "responses": {
                "200": _json(_ref("Meeting"), "The meeting."),
                "401": _UNAUTHORIZED,
                "404": _NOT_FOUND,
            },
        },
        "patch": {
            "operationId": "updateMeeting",
            "summary": "Change a meeting's fields or status.",
            "requestBody": _request("MeetingUpdate"),
            "responses": {
                "200": _json(_ref("Meeting"), "The updated meeting."),
                "400": _BAD_REQUEST,
                "401": _UNAUTHORIZED,
                "404": _NOT_FOUND,
                "409": _error("The status would move backwards (`invalid_transition`)."),
                "413": _TOO_LARGE,
            },
        },
        "delete": {
            "operationId": "deleteMeeting",
            "summary": "Delete a meeting and its participant records.",
            "responses": {
                "204": {"description": "Deleted."},
                "401": _UNAUTHORIZED,
                "404": _NOT_FOUND,
            },
        },
    },
    "/api/v1/meetings/{meeting_id}/join": {
        "parameters": [_MEETING_ID],
        "post": {
            "operationId": "joinMeeting",
            "summary": "Admit a user the caller vouches for; returns a join token.",
            "requestBody": _request("JoinRequest"),
            "responses": {
                "200": _JOINED,
                "400": _BAD_REQUEST,
                "401": _UNAUTHORIZED,
                "404": _NOT_FOUND,
                "409": _ENDED,
                "413": _TOO_LARGE,
            },
        },
    },
    "/m/{meeting_id}": {
        "parameters": [_MEETING_ID],
        "get": {
            "operationId": "meetingPage",
            "summary": "The browser client for this meeting (the join link).",
            "security": [],
            "responses": {
                "200": {"description": "HTML page.", "content": {"text/html": {}}},
                "404": {"description": "No such meeting.", "content": {"text/html": {}}},
            },
        },
    },
    "/m/{meeting_id}/join": {
        "parameters": [_MEETING_ID],
        "post": {
            "operationId": "guestJoin",
            "summary": "Join from the browser page with a name only, as an anonymous participant.",
            "security": [],
            "requestBody": _request("GuestJoinRequest"),
            "responses": {
                "200": _JOINED,
                "400": _BAD_REQUEST,
                "404": _NOT_FOUND,
                "409": _ENDED,
                "413": _TOO_LARGE,
            },
        },
    },
    "/static/{path}": {
        "get": {
            "operationId": "staticFile",
            "summary": "A file of the browser client.",
            "security": [],
            "parameters": [
                {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "The file."},
                "404": _error("No such file (`not_found`)."),
            },
        },
    },
}


def openapi_document(public_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document, with this server's public URL."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Townhall",
            "version": "1",
            "description": "Meetings, joins and join tokens. Errors have the shape "
            '`{"error": {"code", "message", "details"}}`. A join returns a token and '
            "the signaling WebSocket URL of the SFU node that hosts the meeting.",
        },
        "servers": [{"url": public_url}],
        "security": [{"apiKey": []}],
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "The admin API key."}
            },
            "schemas": _SCHEMAS,
        },
        "paths": _PATHS,
    }
