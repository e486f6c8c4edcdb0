"""Errors the control plane reports on purpose, and the one place they become HTTP.

::

    ControlError                      code                  HTTP
    ├── BadRequest                    bad_request           400
    │   ├── InvalidJson               invalid_json          400
    │   ├── InvalidField              invalid_field         400
    │   ├── UnknownField              unknown_field         400
    │   └── InvalidParameter          invalid_parameter     400
    ├── Unauthorized                  unauthorized          401
    ├── Forbidden                     forbidden             403
    │   ├── AccessDenied              access_denied         403  (details.rule)
    │   └── InvalidSignature          invalid_signature     403
    ├── NotFound                      not_found             404
    │   ├── MeetingNotFound           meeting_not_found     404
    │   ├── ParticipantNotFound       participant_not_found 404
    │   └── RecordingNotFound         recording_not_found   404
    ├── MethodNotAllowed              method_not_allowed    405
    ├── Conflict                      conflict              409
    │   ├── MeetingEnded              meeting_ended         409
    │   ├── MeetingFull               meeting_full          409  (details.rule)
    │   ├── InvalidTransition         invalid_transition    409
    │   ├── NotConnected              not_connected         409
    │   ├── AlreadyRecording          already_recording     409
    │   ├── NotRecording              not_recording         409
    │   └── NotReady                  not_ready             409
    ├── Gone                          gone                  410
    │   └── LinkExpired               link_expired          410
    ├── PayloadTooLarge               payload_too_large     413
    ├── RateLimited                   rate_limited          429  (Retry-After)
    └── Unavailable                   unavailable           503  (Retry-After)
        └── NoNodeAvailable           no_node_available     503  (Retry-After)

An error may carry HTTP headers (``RateLimited`` sets ``Retry-After``).
Anything else that escapes a handler is a bug: :func:`http_error` turns it
into a 500 ``internal`` whose body says nothing about the internals (the edge
logs the traceback). Every error body has the shape
``{"error": {"code": ..., "message": ..., "details": {...}}}``.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "AccessDenied",
    "AlreadyRecording",
    "BadRequest",
    "Conflict",
    "ControlError",
    "Forbidden",
    "Gone",
    "InvalidField",
    "InvalidJson",
    "InvalidParameter",
    "InvalidSignature",
    "InvalidTransition",
    "LinkExpired",
    "MeetingEnded",
    "MeetingFull",
    "MeetingNotFound",
    "MethodNotAllowed",
    "NotConnected",
    "NotFound",
    "NotReady",
    "NotRecording",
    "ParticipantNotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RecordingNotFound",
    "Unauthorized",
    "UnknownField",
    "Unavailable",
    "NoNodeAvailable",
    "http_error",
]


class ControlError(Exception):
    """An error meant for the API caller: a stable code, a message, details."""

    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers that go with this error's response."""
        return {}


class BadRequest(ControlError):
    code = "bad_request"


class InvalidJson(BadRequest):
    code = "invalid_json"


class InvalidField(BadRequest):
    code = "invalid_field"


class UnknownField(BadRequest):
    code = "unknown_field"


class InvalidParameter(BadRequest):
    code = "invalid_parameter"


class Unauthorized(ControlError):
    code = "unauthorized"


class Forbidden(ControlError):
    code = "forbidden"


class AccessDenied(Forbidden):
    """An admission rule refused someone; ``details.rule`` names the rule."""

    code = "access_denied"


class InvalidSignature(Forbidden):
    """A signed link whose signature does not match (tampered, or for another file)."""

    code = "invalid_signature"


class NotFound(ControlError):
    code = "not_found"


class MeetingNotFound(NotFound):
    code = "meeting_not_found"


class ParticipantNotFound(NotFound):
    code = "participant_not_found"

    @classmethod
    def for_id(cls, participant_id: str) -> ParticipantNotFound:
        return cls(
            f"no participant '{participant_id}' in this meeting", participant_id=participant_id
        )


class RecordingNotFound(NotFound):
    code = "recording_not_found"


class MethodNotAllowed(ControlError):
    code = "method_not_allowed"


class Conflict(ControlError):
    code = "conflict"


class MeetingEnded(Conflict):
    code = "meeting_ended"


class MeetingFull(Conflict):
    """``max_participants`` is reached; ``details.rule`` is ``max_participants``."""

    code = "meeting_full"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class NotConnected(Conflict):
    """The participant is not connected to the meeting's media now."""

    code = "not_connected"


class AlreadyRecording(Conflict):
    """The meeting is being recorded already; ``details.recording_id`` names the recording."""

    code = "already_recording"


class NotRecording(Conflict):
    code = "not_recording"


class NotReady(Conflict):
    """What was asked for is still being made (a transcript, a summary)."""

    code = "not_ready"


class Gone(ControlError):
    code = "gone"


class LinkExpired(Gone):
    """A signed link past its expiry: ask for a new one."""

    code = "link_expired"


class PayloadTooLarge(ControlError):
    code = "payload_too_large"


class RateLimited(ControlError):
    """Too many requests from one sender; ``details.retry_after_s`` says when to retry."""

    code = "rate_limited"

    @property
    def headers(self) -> dict[str, str]:
        return _retry_after(self.details)


class Unavailable(ControlError):
    """A dependency (Redis, the SFU nodes) cannot be reached now; retry later."""

    code = "unavailable"

    @property
    def headers(self) -> dict[str, str]:
        return _retry_after(self.details)


class NoNodeAvailable(Unavailable):
    """No SFU node can host the meeting now (none serving, all full, or Redis unreachable)."""

    code = "no_node_available"


def _retry_after(details: dict[str, Any]) -> dict[str, str]:
    """``Retry-After`` in whole seconds from ``details.retry_after_s`` (default 1)."""
    retry = details.get("retry_after_s", 1)
    return {"Retry-After": str(max(1, math.ceil(float(retry))))}


_STATUS: tuple[tuple[type[ControlError], int], ...] = (
    (BadRequest, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (MethodNotAllowed, 405),
    (Conflict, 409),
    (Gone, 410),
    (PayloadTooLarge, 413),
    (RateLimited, 429),
    (Unavailable, 503),
)


def http_error(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The HTTP status and error body for any exception (500 for the unexpected)."""
    if isinstance(exc, ControlError):
        for kind, status in _STATUS:
            if isinstance(exc, kind):
                return status, _body(exc.code, exc.message, exc.details)
    return 500, _body("internal", "internal server error", {})


def _body(code: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}
