"""The JSON schemas of the OpenAPI document (:mod:`control.openapi`): bodies and answers."""

from __future__ import annotations

from typing import Any

from townhall.contract import MAX_CHAT_CHARS

from .bodies import (
    DEFAULT_INVITE_TTL_S,
    DESCRIPTION_MAX,
    EMAIL_MAX,
    IDENTITY_MAX,
    INVITE_MAX,
    MAX_DURATION_S,
    MAX_INVITE_TTL_S,
    MAX_INVITE_USES,
    MAX_ROOMS,
    NAME_MAX,
    REASON_MAX,
    ROOM_NAME_MAX,
    TITLE_MAX,
)
from .policy import ADMISSION_RULES, LEVELS, MAX_LIST_ENTRIES

__all__ = ["SCHEMAS", "ref"]


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(
    properties: dict[str, Any],
    required: list[str] | None = None,
    *,
    closed: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_TIMESTAMP = {"type": "string", "format": "date-time"}
_NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
_ROLE = {"enum": ["host", "participant", "viewer"]}
_EMAIL = {"type": "string", "format": "email", "maxLength": EMAIL_MAX}
_NAME = {"type": "string", "minLength": 1, "maxLength": NAME_MAX}
_INVITE = {
    "type": "string",
    "maxLength": INVITE_MAX,
    "description": "The `token` of an invite (the `invite` parameter of its link).",
}
_CURSOR = {
    "type": ["string", "null"],
    "description": "Pass as `cursor` for the next page; null on the last page.",
}
_LEVEL = {"enum": list(LEVELS)}
_RULE = {
    "type": ["string", "null"],
    "enum": [*ADMISSION_RULES, None],
    "description": "The admission rule that decided (null when admitted outright).",
}

_POLICY_PROPERTIES: dict[str, Any] = {
    "require_waiting_room": {
        "type": "boolean",
        "description": "Joiners wait in the lobby until a host admits them (hosts do not wait).",
    },
    "allow_anonymous_join": {
        "type": "boolean",
        "description": "Guests from the join page without an invite may join.",
    },
    "max_participants": {
        "type": ["integer", "null"],
        "minimum": 1,
        "description": "Most participants holding a place at once (null: no limit).",
    },
    "allowed_domains": {
        "type": "array",
        "maxItems": MAX_LIST_ENTRIES,
        "items": {"type": "string"},
        "description": "E-mail domains let in (exact match: subdomains are not implied); "
        "empty: any. Non-hosts outside them are removed when this changes.",
    },
    "blocked_users": {
        "type": "array",
        "maxItems": MAX_LIST_ENTRIES,
        "items": {"type": "string"},
        "description": "E-mail addresses or identities that may not join; anyone on it is "
        "removed at once.",
    },
    "recording_permissions": {**_LEVEL, "description": "Who may record."},
    "screen_share_permissions": {**_LEVEL, "description": "Who may share a screen."},
    "chat_permissions": {**_LEVEL, "description": "Who may chat."},
    "require_e2ee": {
        "type": "boolean",
        "description": "End-to-end encryption required. Townhall does not offer E2EE yet, "
        "so with this set every join is refused (rule `require_e2ee`).",
    },
}

_PARTICIPANT = _object(
    {
        "participant_id": _STRING,
        "name": _STRING,
        "email": _NULLABLE_STRING,
        "identity": _STRING,
        "role": _ROLE,
        "status": {"enum": ["waiting", "joined", "denied", "removed", "left"]},
        "status_reason": _NULLABLE_STRING,
        "connected": {"type": "boolean"},
        "room": {**_NULLABLE_STRING, "description": "Breakout room id; null: main meeting."},
        "audio_muted": {"type": "boolean"},
        "video_muted": {"type": "boolean"},
        "joined_at": _TIMESTAMP,
    }
)

SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": _object(
                {
                    "code": _STRING,
                    "message": _STRING,
                    "details": {
                        "type": "object",
                        "description": "E.g. `field`, `parameter`, `rule`, `retry_after_s`.",
                    },
                }
            )
        }
    ),
    "Meeting": _object(
        {
            "id": _STRING,
            "title": _STRING,
            "description": _STRING,
            "host_identity": _NULLABLE_STRING,
            "scheduled_start": _NULLABLE_TIMESTAMP,
            "status": {"enum": ["scheduled", "live", "ended"]},
            "join_url": {"type": "string", "format": "uri"},
            "created_at": _TIMESTAMP,
            "updated_at": _TIMESTAMP,
        }
    ),
    "MeetingCreate": _object(
        {
            "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
            "description": {"type": "string", "maxLength": DESCRIPTION_MAX},
            "scheduled_start": {**_TIMESTAMP, "description": "With a UTC offset, e.g. `Z`."},
            "host_identity": {"type": "string", "maxLength": IDENTITY_MAX},
        },
        ["title"],
        closed=True,
    ),
    "MeetingUpdate": _object(
        {
            "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
            "description": {"type": "string", "maxLength": DESCRIPTION_MAX},
            "scheduled_start": _NULLABLE_TIMESTAMP,
            "host_identity": {"type": ["string", "null"], "maxLength": IDENTITY_MAX},
            "status": {"enum": ["scheduled", "live", "ended"]},
        },
        [],
        closed=True,
        description="Absent fields keep their value; `null` clears an optional one. "
        "Status only moves forward: scheduled → live → ended.",
    ),
    "MeetingList": _object(
        {"meetings": {"type": "array", "items": ref("Meeting")}, "next_cursor": _CURSOR}
    ),
    "JoinRequest": _object(
        {
            "name": _NAME,
            "email": _EMAIL,
            "role": {**_ROLE, "description": "Default: the invite's role, else participant."},
            "invite": _INVITE,
        },
        ["name"],
        closed=True,
    ),
    "GuestJoinRequest": _object(
        {
            "name": {**_NAME, "description": "Trimmed; no control characters."},
            "invite": {
                **_INVITE,
                "description": "An invite vouches for the guest (not anonymous); one bound to "
                "an e-mail address makes them that address.",
            },
        },
        ["name"],
        closed=True,
    ),
    "IceServer": _object(
        {
            "urls": {"type": "array", "items": _STRING},
            "username": _STRING,
            "credential": _STRING,
        },
        ["urls"],
    ),
    "JoinResponse": _object(
        {
            "participant_id": _STRING,
            "meeting_id": _STRING,
            "meeting_title": _STRING,
            "name": _STRING,
            "role": _ROLE,
            "status": {
                "enum": ["joined", "waiting"],
                "description": "waiting: in the lobby; poll `lobby_url` with the control token.",
            },
            "token": {
                "type": "string",
                "description": "Signed join token (JWT, HS256); send it in the signaling "
                "`join` frame. Only when joined.",
            },
            "control_token": {
                "type": "string",
                "description": "Bearer token (JWT, 12 h) for this participant's REST calls "
                "on this meeting: lobby poll, chat, and host actions for hosts.",
            },
            "signaling_url": {"type": "string", "format": "uri"},
            "ice_servers": {"type": "array", "items": ref("IceServer")},
            "lobby_url": {
                "type": "string",
                "format": "uri",
                "description": "Only when waiting.",
            },
        },
        [
            "participant_id",
            "meeting_id",
            "meeting_title",
            "name",
            "role",
            "status",
            "control_token",
            "signaling_url",
            "ice_servers",
        ],
    ),
    "AccessQuery": _object(
        {
            "name": _NAME,
            "email": _EMAIL,
            "role": _ROLE,
            "identity": {"type": "string", "maxLength": IDENTITY_MAX},
            "invite": _INVITE,
        },
        [],
        closed=True,
        description="Without `email` or `identity`, the question is about an anonymous guest.",
    ),
    "AccessDecision": _object(
        {
            "allowed": {"type": "boolean"},
            "status": {"enum": ["joined", "waiting", "refused"]},
            "rule": _RULE,
            "reason": _STRING,
        }
    ),
    "InviteCreate": _object(
        {
            "email": {**_EMAIL, "description": "Only this address may use the invite."},
            "role": {**_ROLE, "description": "The role the invite grants."},
            "expires_in_s": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_INVITE_TTL_S,
                "default": DEFAULT_INVITE_TTL_S,
            },
            "max_uses": {"type": "integer", "minimum": 1, "maximum": MAX_INVITE_USES},
        },
        [],
        closed=True,
    ),
    "Invite": _object(
        {
            "id": _STRING,
            "token": _STRING,
            "url": {"type": "string", "format": "uri"},
            "email": _NULLABLE_STRING,
            "role": {"enum": ["host", "participant", "viewer", None]},
            "expires_at": _TIMESTAMP,
            "max_uses": {"type": ["integer", "null"]},
            "uses": {"type": "integer"},
        }
    ),
    "Policy": _object(_POLICY_PROPERTIES, closed=True),
    "PolicyUpdate": _object(
        _POLICY_PROPERTIES,
        [],
        closed=True,
        description="Only the given keys change.",
    ),
    "Waiter": _object(
        {
            "participant_id": _STRING,
            "name": _STRING,
            "email": _NULLABLE_STRING,
            "since": _TIMESTAMP,
        }
    ),
    "Lobby": _object({"waiting": {"type": "array", "items": ref("Waiter")}}),
    "LobbyStanding": _object(
        {
            "status": {"enum": ["waiting", "joined", "denied"]},
            "token": {"type": "string", "description": "Join token, once admitted."},
            "signaling_url": {"type": "string", "format": "uri"},
            "ice_servers": {"type": "array", "items": ref("IceServer")},
            "reason": {"type": "string", "description": "Why, when denied."},
        },
        ["status"],
    ),
    "Reconnection": _object(
        {
            "token": {
                "type": "string",
                "description": "A fresh join token for the same participant.",
            },
            "signaling_url": {
                "type": "string",
                "format": "uri",
                "description": "The signaling socket of the node that hosts the meeting now.",
            },
            "ice_servers": {"type": "array", "items": ref("IceServer")},
        },
        ["token", "signaling_url", "ice_servers"],
    ),
    "Denial": _object({"reason": {"type": "string", "maxLength": REASON_MAX}}, [], closed=True),
    "Participant": _PARTICIPANT,
    "ParticipantList": _object({"participants": {"type": "array", "items": ref("Participant")}}),
    "Mute": _object({"kind": {"enum": ["audio", "video"]}}, closed=True),
    "MuteResult": _object(
        {"participant_id": _STRING, "kind": {"enum": ["audio", "video"]}, "muted": {"const": True}}
    ),
    "Removal": _object(
        {
            "block": {
                "type": "boolean",
                "default": False,
                "description": "Also add their e-mail address and identity to `blocked_users`.",
            },
            "reason": {"type": "string", "maxLength": REASON_MAX},
        },
        [],
        closed=True,
    ),
    "Promotion": _object({"role": _ROLE}, closed=True),
    "ChatPost": _object(
        {
            "text": {"type": "string", "minLength": 1, "maxLength": MAX_CHAT_CHARS},
            "to": {"type": "string", "description": "A participant id: a direct message."},
        },
        ["text"],
        closed=True,
    ),
    "ChatMessage": _object(
        {
            "id": _STRING,
            "sender_id": {**_STRING, "description": "`system` for the admin's messages."},
            "sender_name": _STRING,
            "text": _STRING,
            "to": {**_NULLABLE_STRING, "description": "null: to everyone."},
            "sent_at": _TIMESTAMP,
        }
    ),
    "ChatPage": _object(
        {"messages": {"type": "array", "items": ref("ChatMessage")}, "next_cursor": _CURSOR}
    ),
    "BreakoutCreate": _object(
        {
            "count": {"type": "integer", "minimum": 1, "maximum": MAX_ROOMS},
            "rooms": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_ROOMS,
                "items": _object(
                    {"name": {"type": "string", "minLength": 1, "maxLength": ROOM_NAME_MAX}},
                    [],
                    closed=True,
                ),
            },
            "assignments": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0},
                "description": "Participant id → room index.",
            },
            "auto_assign": {
                "type": "boolean",
                "default": False,
                "description": "Round-robin of the connected non-hosts not assigned by hand.",
            },
            "duration_s": {"type": "integer", "minimum": 1, "maximum": MAX_DURATION_S},
        },
        [],
        closed=True,
        description="Give `count` or `rooms` (or both, agreeing).",
    ),
    "BreakoutRoom": _object(
        {"id": _STRING, "name": _STRING, "participants": {"type": "array", "items": _STRING}}
    ),
    "Breakout": _object(
        {
            "rooms": {"type": "array", "items": ref("BreakoutRoom")},
            "closes_at": {
                **_NULLABLE_TIMESTAMP,
                "description": "When everyone returns to the main meeting.",
            },
        }
    ),
    "BreakoutMove": _object(
        {
            "participant_id": _STRING,
            "room_id": {**_NULLABLE_STRING, "description": "null: back to the main meeting."},
        },
        closed=True,
    ),
    "AuditEntry": _object(
        {
            "seq": {"type": "integer"},
            "at": _TIMESTAMP,
            "actor": {
                **_STRING,
                "description": "`admin`, `guest`, `system` or `participant:<id>`.",
            },
            "action": {
                **_STRING,
                "description": "E.g. admission.joined, admission.waiting, admission.refused, "
                "lobby.admit, lobby.deny, policy.change, participant.remove, meeting.end.",
            },
            "target": _NULLABLE_STRING,
            "reason": _NULLABLE_STRING,
            "details": {"type": "object"},
        }
    ),
    "AuditPage": _object(
        {"entries": {"type": "array", "items": ref("AuditEntry")}, "next_cursor": _CURSOR}
    ),
}
