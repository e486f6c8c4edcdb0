"""The OpenAPI description of observability: metrics, health, nodes, alerts and webhooks.

Merged into the document by :func:`control.openapi.openapi_document`; the
handlers are :mod:`control.health`, :mod:`control.metrics` (``/metrics``) and
:mod:`control.webhooks`. The requests Townhall *sends* (meeting-event webhooks
and alert notifications) are described under the document's ``webhooks``.
"""

from __future__ import annotations

from typing import Any

from .health import MAX_LOSS, MIN_QUALITY
from .openapi import _error, _json, _meeting_path, _op
from .openapi_schemas import _NULLABLE_STRING, _NULLABLE_TIMESTAMP, _STRING, _TIMESTAMP, ref
from .params import MAX_PAGE_SIZE
from .webhooks import DELIVERY_STATUSES, EVENT_TYPES

__all__ = ["OBSERVABILITY_PATHS", "OBSERVABILITY_SCHEMAS", "OBSERVABILITY_WEBHOOKS"]

_M = "/api/v1/meetings/{meeting_id}"
_NUMBER = {"type": "number"}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_INTEGER = {"type": "integer"}
_CHECK_STATUS = {"enum": ["ok", "unavailable"]}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


def _public(operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "x-townhall-scope": "public",
        "security": [],
        "responses": responses,
    }


OBSERVABILITY_SCHEMAS: dict[str, Any] = {
    "Readiness": _object(
        {
            "status": _CHECK_STATUS,
            "checks": _object(
                {"store": ref("ReadinessCheck"), "media": ref("ReadinessCheck")},
            ),
        }
    ),
    "ReadinessCheck": _object(
        {
            "status": _CHECK_STATUS,
            "error": {**_STRING, "description": "Why the check failed."},
            "latency_ms": {**_NUMBER, "description": "store: how long the probe write took."},
            "meetings": {**_INTEGER, "description": "media: meetings hosted."},
            "participants": {**_INTEGER, "description": "media: participants connected."},
        },
        ["status"],
    ),
    "ParticipantQuality": {
        **_object(
            {
                "participant_id": _STRING,
                "name": _STRING,
                "connection_state": _STRING,
                "rtt_ms": _NUMBER,
                "jitter_up_ms": _NUMBER,
                "jitter_down_ms": _NUMBER,
                "loss_up": {**_NUMBER, "description": "Loss fraction 0..1, publisher to SFU."},
                "loss_down": {
                    **_NUMBER,
                    "description": "Loss fraction 0..1, SFU to subscriber (from its receiver "
                    "reports).",
                },
                "bitrate_up_kbps": _NUMBER,
                "bitrate_down_kbps": _NUMBER,
                "audio_quality": {
                    **_NUMBER,
                    "description": "0..5: an ITU-T G.107 E-model MOS from loss, RTT and "
                    "jitter (1..4.5); 0 without connected media.",
                },
                "video_quality": {
                    **_NUMBER,
                    "description": "0..5: 5 - 0.5 x loss %, minus 1 when RTT > 300 ms "
                    "(1..5); 0 without connected media.",
                },
                "speaking": {"type": "boolean"},
                "speaking_s": _NUMBER,
            },
            ["participant_id", "name", "connection_state"],
        ),
        "description": "Sampled by the SFU every 2 s; a participant not sampled yet has only "
        "`participant_id`, `name` and `connection_state`.",
    },
    "MeetingMetrics": _object(
        {
            "meeting_id": _STRING,
            "status": {"enum": ["scheduled", "live", "ended"]},
            "hosted": {"type": "boolean", "description": "Whether a media node hosts it now."},
            "sampled_at": _TIMESTAMP,
            "participants": {"type": "array", "items": ref("ParticipantQuality")},
            "engagement": _object(
                {
                    "participants": {**_INTEGER, "description": "Connected now."},
                    "active_speakers": {"type": "array", "items": _STRING},
                    "speaking_s_total": _NUMBER,
                    "participants_joined": {
                        **_INTEGER,
                        "description": "Let in since the meeting was created.",
                    },
                    "chat_messages": _INTEGER,
                }
            ),
        }
    ),
    "MeetingHealth": _object(
        {
            "meeting_id": _STRING,
            "meeting_status": {"enum": ["scheduled", "live", "ended"]},
            "checked_at": _TIMESTAMP,
            "status": {
                "enum": ["idle", "no_media", "degraded", "healthy"],
                "description": "idle: nobody connected; no_media: connected, no packets "
                "moving; degraded: someone has a poor link.",
            },
            "media_flowing": {"type": "boolean"},
            "participants": _INTEGER,
            "poor_quality": {
                "type": "array",
                "items": _object(
                    {
                        "participant_id": _STRING,
                        "name": _STRING,
                        "reasons": {"type": "array", "items": _STRING},
                        "loss_up": _NUMBER,
                        "loss_down": _NUMBER,
                        "audio_quality": _NUMBER,
                        "video_quality": _NUMBER,
                    }
                ),
                "description": f"Participants with an audio or video score under "
                f"{MIN_QUALITY:g} or loss over {MAX_LOSS:.0%} either way.",
            },
            "thresholds": _object({"min_quality": _NUMBER, "max_loss": _NUMBER}),
        }
    ),
    "NodeList": _object(
        {"nodes": {"type": "array", "items": ref("Node")}, "sampled_at": _TIMESTAMP}
    ),
    "Node": _object(
        {
            "node_id": _STRING,
            "state": {
                "enum": ["serving", "draining", "down"],
                "description": "draining: takes no new meetings, exits when empty; down: its "
                "record is still registered but its process is gone (or not attached).",
            },
            "signaling_url": _STRING,
            "region": _STRING,
            "capacity": _object(
                {
                    "max_participants": {"type": ["integer", "null"]},
                    "max_forwarded_pps": _NULLABLE_NUMBER,
                    "load_fraction": {
                        **_NUMBER,
                        "description": "The largest used fraction of the configured capacities.",
                    },
                }
            ),
            "hosting": {
                "type": "array",
                "items": _STRING,
                "description": "Ids of the meetings whose lease the node holds.",
            },
            "last_heartbeat_at": {**_NUMBER, "description": "Unix time of the last heartbeat."},
            "heartbeat_age_s": _NUMBER,
            "uptime_s": _NUMBER,
            "meetings": _INTEGER,
            "participants": _INTEGER,
            "tracks": _INTEGER,
            "forwarded_packets_per_s": _NUMBER,
            "loop_lag_ms": _NUMBER,
            "counters": {
                "type": "object",
                "additionalProperties": _INTEGER,
                "description": "rtp_packets_in, rtp_packets_forwarded, rtp_bytes_in, "
                "rtp_bytes_forwarded, rtp_malformed, rtcp_malformed, nacks_received, "
                "retransmissions_sent, keyframe_requests_received, keyframe_requests_sent, ...",
            },
            "quality": {
                "type": "object",
                "description": "Means over connected participants: loss_up, loss_down, "
                "jitter_ms, rtt_ms.",
            },
            "cpu_percent": _NULLABLE_NUMBER,
            "memory_percent": _NULLABLE_NUMBER,
            "recorder": {
                "type": ["object", "null"],
                "description": "The recorder's queue and lag (null: no recorder here).",
            },
        },
        [
            "node_id",
            "state",
            "signaling_url",
            "meetings",
            "participants",
            "tracks",
            "forwarded_packets_per_s",
        ],
    ),
    "NodeDrain": _object(
        {
            "migrate": {
                "type": "boolean",
                "description": "Move the node's participants to other nodes now (they "
                "reconnect on their own) instead of waiting for its meetings to end.",
            }
        },
        [],
    ),
    "NodeDraining": _object(
        {
            "node_id": _STRING,
            "state": {"enum": ["draining"]},
            "meetings": {**_INTEGER, "description": "Meetings still on the node."},
        }
    ),
    "AlertList": _object(
        {
            "rules": {"type": "array", "items": ref("AlertRule")},
            "alerts": {"type": "array", "items": ref("Alert")},
        }
    ),
    "AlertRule": _object(
        {
            "name": _STRING,
            "metric": _STRING,
            "comparison": {"enum": [">", ">=", "<", "<=", "==", "!="]},
            "threshold": _NUMBER,
            "for_s": _NUMBER,
            "scope": {"enum": ["node", "participant"]},
            "severity": _STRING,
        }
    ),
    "Alert": _object(
        {
            "rule": _STRING,
            "state": {
                "enum": ["pending", "firing", "resolved"],
                "description": "pending: the condition holds, not yet for `for_s`.",
            },
            "severity": _STRING,
            "scope": {"enum": ["node", "participant"]},
            "metric": _STRING,
            "comparison": _STRING,
            "threshold": _NUMBER,
            "for_s": _NUMBER,
            "value": _NUMBER,
            "subject": {**_STRING, "description": "`node`, or `<meeting_id>/<participant_id>`."},
            "labels": {"type": "object", "additionalProperties": _STRING},
            "started_at": _TIMESTAMP,
            "fired_at": _NULLABLE_TIMESTAMP,
            "resolved_at": _NULLABLE_TIMESTAMP,
        }
    ),
    "WebhookDeliveryList": _object(
        {
            "deliveries": {"type": "array", "items": ref("WebhookDelivery")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        }
    ),
    "WebhookDelivery": _object(
        {
            "id": {**_STRING, "description": "Sent as `X-Townhall-Delivery`."},
            "event_id": _STRING,
            "event": {"enum": list(EVENT_TYPES)},
            "meeting_id": _NULLABLE_STRING,
            "url": _STRING,
            "status": {"enum": list(DELIVERY_STATUSES)},
            "attempts": _INTEGER,
            "response_status": {"type": ["integer", "null"]},
            "error": _NULLABLE_STRING,
            "created_at": _TIMESTAMP,
            "updated_at": _TIMESTAMP,
            "next_attempt_at": _NULLABLE_TIMESTAMP,
        }
    ),
    "WebhookEvent": _object(
        {
            "id": _STRING,
            "type": {"enum": list(EVENT_TYPES)},
            "created_at": _TIMESTAMP,
            "meeting_id": _NULLABLE_STRING,
            "data": {
                "type": "object",
                "description": "meeting.*: title, status, by (and reason when ended); "
                "participant.*: participant_id, name, identity, role (and reason when left); "
                "recording.started: recording_id, started_by, options; recording.finished: "
                "recording_id, status, reason, duration_s, files, bytes; transcript.ready, "
                "summary.ready: recording_id, status, error.",
            },
        }
    ),
    "AlertNotification": _object(
        {
            "type": {"const": "alert"},
            "status": {"enum": ["firing", "resolved"]},
            "node": _STRING,
            "rule": _STRING,
            "state": {"enum": ["firing", "resolved"]},
            "severity": _STRING,
            "scope": {"enum": ["node", "participant"]},
            "metric": _STRING,
            "comparison": _STRING,
            "threshold": _NUMBER,
            "for_s": _NUMBER,
            "value": _NUMBER,
            "subject": _STRING,
            "labels": {"type": "object", "additionalProperties": _STRING},
            "started_at": _TIMESTAMP,
            "fired_at": _NULLABLE_TIMESTAMP,
            "resolved_at": _NULLABLE_TIMESTAMP,
        }
    ),
}

_DELIVERY_QUERY = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 50},
    },
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    {"name": "status", "in": "query", "schema": {"enum": list(DELIVERY_STATUSES)}},
    {"name": "event", "in": "query", "schema": {"enum": list(EVENT_TYPES)}},
    {"name": "meeting_id", "in": "query", "schema": {"type": "string"}},
]

OBSERVABILITY_PATHS: dict[str, Any] = {
    "/readyz": {
        "get": _public(
            "readyz",
            "Readiness: the store takes a write and a media plane is attached and answers.",
            {
                "200": _json(ref("Readiness"), "Ready."),
                "503": _json(ref("Readiness"), "A check failed; `checks` says which."),
            },
        )
    },
    "/metrics": {
        "get": {
            **_public(
                "metrics",
                "Prometheus metrics (text exposition format 0.0.4).",
                {
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _error(
                        "`[metrics] bearer_token` is set and the request does not carry it "
                        "(`unauthorized`)."
                    ),
                },
            ),
            "description": "Open to anyone unless `[metrics] bearer_token` is configured; "
            "then `Authorization: Bearer <token>` is required.",
        }
    },
    f"{_M}/metrics": _meeting_path(
        get=_op(
            "getMeetingMetrics",
            "The meeting's live numbers per participant (RTT, jitter, loss up and down, "
            "bitrates, audio/video quality 0..5, speaking) and its engagement.",
            "host",
            {"200": _json(ref("MeetingMetrics"), "Sampled by the SFU every 2 s.")},
        )
    ),
    f"{_M}/health": _meeting_path(
        get=_op(
            "getMeetingHealth",
            "Whether media is flowing, and who has a poor link.",
            "host",
            {"200": _json(ref("MeetingHealth"), "The meeting's health now.")},
        )
    ),
    "/api/v1/nodes": {
        "get": _op(
            "listNodes",
            "The media nodes: load, counters, mean link quality, host CPU and memory.",
            "admin",
            {"200": _json(ref("NodeList"), "One entry per node.")},
        )
    },
    "/api/v1/nodes/{node_id}/drain": {
        "parameters": [{"name": "node_id", "in": "path", "required": True, "schema": _STRING}],
        "post": _op(
            "drainNode",
            "Stop placing meetings on a node; it exits when its last meeting ends.",
            "admin",
            {
                "202": _json(ref("NodeDraining"), "The node is draining."),
                "404": _error("No such node."),
                "503": _error("The registry or the node cannot be reached."),
            },
            body="NodeDrain",
            optional_body=True,
        ),
    },
    "/api/v1/alerts": {
        "get": _op(
            "listAlerts",
            "The configured alert rules and the alerts pending or firing now.",
            "admin",
            {"200": _json(ref("AlertList"), "Rules and alerts.")},
        )
    },
    "/api/v1/webhooks/deliveries": {
        "get": _op(
            "listWebhookDeliveries",
            "The meeting-event webhook delivery log, newest first.",
            "admin",
            {
                "200": _json(ref("WebhookDeliveryList"), "A page of deliveries."),
                "400": _error("Bad `limit`, `cursor`, `status` or `event`, or an unknown one."),
            },
            parameters=_DELIVERY_QUERY,
        )
    },
}

_SIGNED = (
    "Signed: `X-Townhall-Signature: sha256=<hex HMAC-SHA256 of the body>` under the "
    "endpoint's secret, `X-Townhall-Timestamp` (Unix seconds of this attempt). Also "
    "`X-Townhall-Event` and `X-Townhall-Delivery` (the same on every retry). A 2xx answer "
    "acknowledges; no answer, 408, 425, 429 and 5xx are retried with exponential backoff."
)

OBSERVABILITY_WEBHOOKS: dict[str, Any] = {
    "meetingEvent": {
        "post": {
            "operationId": "meetingEvent",
            "summary": "A meeting event, sent to each `[[webhooks.endpoints]]` that wants it.",
            "description": _SIGNED,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("WebhookEvent")}},
            },
            "responses": {"2XX": {"description": "Received."}},
        }
    },
    "alert": {
        "post": {
            "operationId": "alertNotification",
            "summary": "An alert fired or resolved, sent to each `[[alerts.webhooks]]` "
            '(`format = "slack"`: `{"text": "..."}` instead).',
            "description": "Signed as meeting events are when the target has a `secret`.",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("AlertNotification")}},
            },
            "responses": {"2XX": {"description": "Received."}},
        }
    },
}
