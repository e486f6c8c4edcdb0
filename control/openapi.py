"""The OpenAPI 3.1 description of the control plane's HTTP interface.

Written by hand to match the handlers (:mod:`control.api`,
:mod:`control.api_moderation`, :mod:`control.api_collaboration`,
:mod:`control.webpages`, :mod:`control.app`); ``tests/control/test_api.py``
checks that every route of the application is described here, and nothing
else, and that answers carry the fields the schemas list. Schemas live in
:mod:`control.openapi_schemas`.

Every operation names the callers it accepts in ``x-townhall-scope``:
``admin`` (the API key), ``host`` (the key, or a host's control token for
that meeting), ``participant`` (the key, or the control token of anyone in
that meeting), ``self-or-host``, ``self`` (the key, or the participant's own
control token or join token) or ``public``.
"""

from __future__ import annotations

from typing import Any, Literal

from .lobby import MAX_WAIT_S
from .openapi_schemas import SCHEMAS, ref
from .params import MAX_PAGE_SIZE

__all__ = ["openapi_document"]

_JSON = "application/json"
Scope = Literal["admin", "host", "participant", "self-or-host", "self", "public"]
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "admin": [{"apiKey": []}],
    "host": [{"apiKey": []}, {"controlToken": []}],
    "participant": [{"apiKey": []}, {"controlToken": []}],
    "self-or-host": [{"apiKey": []}, {"controlToken": []}],
    "self": [{"apiKey": []}, {"controlToken": []}, {"joinToken": []}],
    "public": [],
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(ref("Error"), description)


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_MEETING_ID = _path_parameter("meeting_id")
_PARTICIPANT_ID = _path_parameter("participant_id")
_BAD_REQUEST = _error(
    "Malformed body or parameter: `invalid_json`, `unknown_field`, `invalid_field`, "
    "`invalid_parameter` (details name the field or parameter)."
)
_UNAUTHORIZED = _error("Missing or invalid API key or control token (`unauthorized`).")
_FORBIDDEN = _error(
    "The control token does not allow this: another meeting, not a host, or removed (`forbidden`)."
)
_NOT_FOUND = _error("No such meeting (`meeting_not_found`) or participant.")
_TOO_LARGE = _error("The body is larger than `server.max_body_bytes` (`payload_too_large`).")
_ENDED = _error("The meeting has ended (`meeting_ended`).")
_PAGE = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    },
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
]


def _op(
    operation_id: str,
    summary: str,
    scope: Scope,
    responses: dict[str, Any],
    *,
    body: str | None = None,
    optional_body: bool = False,
    parameters: list[dict[str, Any]] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "x-townhall-scope": scope,
        "security": _SECURITY[scope],
    }
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {
            "required": not optional_body,
            "content": {_JSON: {"schema": ref(body)}},
        }
    common: dict[str, Any] = {"404": _NOT_FOUND}
    if scope != "public":
        common.update({"401": _UNAUTHORIZED, "403": _FORBIDDEN})
    if body is not None:
        common.update({"400": _BAD_REQUEST, "413": _TOO_LARGE})
    operation["responses"] = {**common, **responses}
    return operation


def _meeting_path(**operations: dict[str, Any]) -> dict[str, Any]:
    return {"parameters": [_MEETING_ID], **operations}


def _participant_path(**operations: dict[str, Any]) -> dict[str, Any]:
    return {"parameters": [_MEETING_ID, _PARTICIPANT_ID], **operations}


_JOINED = _json(
    ref("JoinResponse"),
    "Let in (`status: joined`, with a join token) or waiting in the lobby "
    "(`status: waiting`, poll `lobby_url`).",
)
_ADMISSION_ERRORS = {
    "403": _error(
        "Refused by an admission rule (`access_denied`; `details.rule` names it: "
        "`invite`, `require_e2ee`, `blocked_users`, `allowed_domains`, `allow_anonymous_join`)."
    ),
    "409": _error(
        "The meeting has ended (`meeting_ended`) or is full (`meeting_full`, "
        "`details.rule: max_participants`)."
    ),
}
_PARTICIPANT = _json(ref("Participant"), "The participant.")
_BREAKOUT = _json(ref("Breakout"), "The open rooms (none: an empty list).")

_MEETINGS = "/api/v1/meetings"
_M = "/api/v1/meetings/{meeting_id}"

_PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness: the process serves HTTP.",
            "x-townhall-scope": "public",
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
            "x-townhall-scope": "public",
            "security": [],
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document.")},
        }
    },
    _MEETINGS: {
        "post": _op(
            "createMeeting",
            "Create a meeting.",
            "admin",
            {"201": _json(ref("Meeting"), "Created.")},
            body="MeetingCreate",
        ),
        "get": _op(
            "listMeetings",
            "List meetings, newest first, one page at a time.",
            "admin",
            {
                "200": _json(ref("MeetingList"), "A page of meetings."),
                "400": _error("Bad `limit` or `cursor`, or an unknown parameter."),
            },
            parameters=_PAGE,
        ),
    },
    _M: _meeting_path(
        get=_op("getMeeting", "Get a meeting.", "participant", {"200": _json(ref("Meeting"), "")}),
        patch=_op(
            "updateMeeting",
            "Change a meeting's fields or status.",
            "admin",
            {
                "200": _json(ref("Meeting"), "The updated meeting."),
                "409": _error("The status would move backwards (`invalid_transition`)."),
            },
            body="MeetingUpdate",
        ),
        delete=_op(
            "deleteMeeting",
            "Delete a meeting and its records (its audit log stays); everyone is disconnected.",
            "admin",
            {"204": {"description": "Deleted."}},
        ),
    ),
    f"{_M}/start": _meeting_path(
        post=_op(
            "startMeeting",
            "Make the meeting live.",
            "host",
            {
                "200": _json(ref("Meeting"), "The live meeting."),
                "409": _error("The meeting has ended (`invalid_transition`)."),
            },
        )
    ),
    f"{_M}/end": _meeting_path(
        post=_op(
            "endMeeting",
            "End the meeting for good: everyone is disconnected, the lobby is turned away, "
            "later joins are refused (409).",
            "host",
            {"200": _json(ref("Meeting"), "The ended meeting.")},
        )
    ),
    f"{_M}/join": _meeting_path(
        post=_op(
            "joinMeeting",
            "Admit a user the caller vouches for, by the meeting's policy.",
            "admin",
            {"200": _JOINED, **_ADMISSION_ERRORS},
            body="JoinRequest",
            description="Rules, in order: meeting ended, invite, require_e2ee, blocked_users, "
            "allowed_domains, allow_anonymous_join, max_participants, require_waiting_room "
            "(hosts do not wait). Every decision is audited.",
        )
    ),
    f"{_M}/validate-access": _meeting_path(
        post=_op(
            "validateAccess",
            "Would this person be let in, and if not by which rule? Writes nothing.",
            "admin",
            {"200": _json(ref("AccessDecision"), "The decision a join would get now.")},
            body="AccessQuery",
        )
    ),
    f"{_M}/invites": _meeting_path(
        post=_op(
            "createInvite",
            "Mint a signed invite link, maybe bound to an e-mail address, granting a role, "
            "with an expiry and a use limit.",
            "host",
            {"201": _json(ref("Invite"), "The invite."), "409": _ENDED},
            body="InviteCreate",
        )
    ),
    f"{_M}/policy": _meeting_path(
        get=_op(
            "getPolicy", "The meeting's access policy.", "host", {"200": _json(ref("Policy"), "")}
        ),
        put=_op(
            "replacePolicy",
            "Replace the whole policy; it takes effect at once for everyone connected.",
            "host",
            {"200": _json(ref("Policy"), "The new policy.")},
            body="Policy",
        ),
        patch=_op(
            "updatePolicy",
            "Change some keys of the policy; it takes effect at once.",
            "host",
            {"200": _json(ref("Policy"), "The new policy.")},
            body="PolicyUpdate",
        ),
    ),
    f"{_M}/lobby": _meeting_path(
        get=_op(
            "lobby",
            "Who waits in the lobby (also pushed live to connected hosts as `lobby` frames).",
            "host",
            {"200": _json(ref("Lobby"), "The waiting list, first come first.")},
        )
    ),
    f"{_M}/lobby/{{participant_id}}": _participant_path(
        get=_op(
            "pollLobby",
            "A waiter's standing, long-polled: answers when a host decides or after `wait` s.",
            "self-or-host",
            {"200": _json(ref("LobbyStanding"), "waiting, joined (with a join token) or denied.")},
            parameters=[
                {
                    "name": "wait",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": int(MAX_WAIT_S),
                        "default": 0,
                    },
                }
            ],
        ),
        delete=_op(
            "leaveLobby",
            "Stop waiting.",
            "self-or-host",
            {
                "204": {"description": "Left the lobby."},
                "409": _error("Not waiting (`invalid_transition`)."),
            },
        ),
    ),
    f"{_M}/lobby/{{participant_id}}/admit": _participant_path(
        post=_op(
            "admit",
            "Let a waiter in.",
            "host",
            {
                "200": _PARTICIPANT,
                "409": _error(
                    "Not waiting (`invalid_transition`), or the meeting is full "
                    "(`meeting_full`) or has ended."
                ),
            },
        )
    ),
    f"{_M}/lobby/{{participant_id}}/deny": _participant_path(
        post=_op(
            "deny",
            "Turn a waiter away.",
            "host",
            {"200": _PARTICIPANT, "409": _error("Not waiting (`invalid_transition`).")},
            body="Denial",
            optional_body=True,
        )
    ),
    f"{_M}/participants": _meeting_path(
        get=_op(
            "listParticipants",
            "Everyone let in, with whether they are connected now and their media state.",
            "host",
            {"200": _json(ref("ParticipantList"), "In join order.")},
        )
    ),
    f"{_M}/participants/{{participant_id}}/mute": _participant_path(
        post=_op(
            "muteParticipant",
            "Stop forwarding a participant's audio or video; they are told.",
            "host",
            {
                "200": _json(ref("MuteResult"), "Muted."),
                "409": _error("Not connected (`not_connected`)."),
            },
            body="Mute",
        )
    ),
    f"{_M}/participants/{{participant_id}}/remove": _participant_path(
        post=_op(
            "removeParticipant",
            "Disconnect a participant (`bye` with the reason); with `block`, for good.",
            "host",
            {"200": _PARTICIPANT},
            body="Removal",
            optional_body=True,
        )
    ),
    f"{_M}/participants/{{participant_id}}/promote": _participant_path(
        post=_op(
            "promoteParticipant",
            "Change a participant's role; their permissions change at once.",
            "host",
            {"200": _PARTICIPANT, "409": _error("No longer in the meeting.")},
            body="Promotion",
        )
    ),
    f"{_M}/participants/{{participant_id}}/reconnect": _participant_path(
        post=_op(
            "reconnectParticipant",
            "Where to rejoin after the meeting's node went away, with a fresh join token.",
            "self",
            {
                "200": _json(ref("Reconnection"), "Join again there with this token."),
                "403": _error(
                    "Another participant's token (`forbidden`), removed or denied "
                    "(`forbidden`, `details.status`), or blocked (`access_denied`, "
                    "`details.rule: blocked_users`)."
                ),
                "409": _ENDED,
                "503": _error(
                    "No node can host the meeting now (`no_node_available`); retry after "
                    "`Retry-After` seconds."
                ),
            },
            description=(
                "For a client whose signaling socket dropped without `bye`, or that got "
                "`reconnect`: the meeting is placed again (on another node when its node "
                "died) and the participant gets a new join token for it. Nothing else "
                "changes and nothing is audited."
            ),
        )
    ),
    f"{_M}/chat": _meeting_path(
        post=_op(
            "postChat",
            "Send a chat message to everyone or, with `to`, to one participant.",
            "participant",
            {
                "201": _json(ref("ChatMessage"), "Kept and delivered."),
                "403": _error("Not allowed to chat (role and `chat_permissions`)."),
                "409": _ENDED,
                "429": _error(
                    "Too many messages (`rate_limited`): 5 at once, then 1 a second; "
                    "see `Retry-After`."
                ),
            },
            body="ChatPost",
            description="With a control token the sender is that participant; with the API "
            "key the sender is `system`.",
        ),
        get=_op(
            "readChat",
            "Chat history, oldest first: public messages and the caller's direct messages "
            "(everything for the admin).",
            "participant",
            {"200": _json(ref("ChatPage"), "A page of messages.")},
            parameters=_PAGE,
        ),
    ),
    f"{_M}/breakout-rooms": _meeting_path(
        post=_op(
            "openBreakoutRooms",
            "Open breakout rooms and move participants into them.",
            "host",
            {
                "201": _BREAKOUT,
                "409": _error("Rooms are open already (`conflict`), or the meeting has ended."),
            },
            body="BreakoutCreate",
        ),
        get=_op("breakoutRooms", "The open breakout rooms.", "participant", {"200": _BREAKOUT}),
        delete=_op(
            "closeBreakoutRooms",
            "Bring everyone back to the main meeting, now or after a countdown announced "
            "to the clients (`closes_at`).",
            "host",
            {"200": _BREAKOUT, "400": _error("Bad `countdown_s`.")},
            parameters=[
                {
                    "name": "countdown_s",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 3600, "default": 0},
                }
            ],
        ),
    ),
    f"{_M}/breakout-rooms/move": _meeting_path(
        post=_op(
            "moveToBreakoutRoom",
            "Move one participant to a room, or back to the main meeting (`room_id: null`).",
            "host",
            {"200": _BREAKOUT},
            body="BreakoutMove",
        )
    ),
    f"{_M}/audit": _meeting_path(
        get=_op(
            "auditLog",
            "The meeting's audit log, oldest first: admissions, lobby and moderation "
            "decisions, policy changes (before/after), breakout changes, start/end.",
            "admin",
            {"200": _json(ref("AuditPage"), "A page of entries.")},
            parameters=_PAGE,
        )
    ),
    "/m/{meeting_id}": {
        "parameters": [_MEETING_ID],
        "get": {
            "operationId": "meetingPage",
            "summary": "The browser client for this meeting (the join link).",
            "x-townhall-scope": "public",
            "security": [],
            "responses": {
                "200": {"description": "HTML page.", "content": {"text/html": {}}},
                "404": {"description": "No such meeting.", "content": {"text/html": {}}},
            },
        },
    },
    "/m/{meeting_id}/join": _meeting_path(
        post=_op(
            "guestJoin",
            "Join from the browser page with a name (anonymous) or with an invite.",
            "public",
            {"200": _JOINED, **_ADMISSION_ERRORS},
            body="GuestJoinRequest",
        )
    ),
    "/admin": {
        "get": {
            "operationId": "adminPage",
            "summary": "The operators' dashboard (HTML); it reads the API with the key typed in.",
            "x-townhall-scope": "public",
            "security": [],
            "responses": {"200": {"description": "HTML page.", "content": {"text/html": {}}}},
        },
    },
    "/static/{path}": {
        "get": {
            "operationId": "staticFile",
            "summary": "A file of the browser client.",
            "x-townhall-scope": "public",
            "security": [],
            "parameters": [_path_parameter("path")],
            "responses": {
                "200": {"description": "The file."},
                "404": _error("No such file (`not_found`)."),
            },
        },
    },
}


def openapi_document(public_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document, with this server's public URL."""
    # Imported here: that module builds its paths with this one's helpers.
    from .openapi_observability import (
        OBSERVABILITY_PATHS,
        OBSERVABILITY_SCHEMAS,
        OBSERVABILITY_WEBHOOKS,
    )
    from .openapi_recordings import RECORDING_PATHS, RECORDING_SCHEMAS

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Townhall",
            "version": "1",
            "description": "Meetings, admission by policy, lobby, moderation, chat, breakout "
            "rooms, recordings with transcripts and summaries, audit, metrics, health, alerts "
            "and signed webhooks. Errors have the "
            'shape `{"error": {"code", "message", '
            '"details"}}`. A join returns a join token for the SFU, the signaling WebSocket '
            "URL, and a control token for the participant's own REST calls. Each operation "
            "names its callers in `x-townhall-scope`.",
        },
        "servers": [{"url": public_url}],
        "security": [{"apiKey": []}],
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin API key.",
                },
                "controlToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A participant's control token (`control_token` of a join): "
                    "acts for that participant on that meeting only, with their current role.",
                },
                "joinToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A participant's join token (`token` of a join), while "
                    "valid: only to reconnect that participant.",
                },
            },
            "schemas": {**SCHEMAS, **RECORDING_SCHEMAS, **OBSERVABILITY_SCHEMAS},
        },
        "paths": {**_PATHS, **RECORDING_PATHS, **OBSERVABILITY_PATHS},
        # What Townhall sends: meeting-event webhooks and alert notifications.
        "webhooks": OBSERVABILITY_WEBHOOKS,
    }
