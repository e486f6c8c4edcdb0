"""Errors of the media plane, and the one place they become WebSocket close codes.

    SfuError
    ├── SignalingError      a frame broke the protocol (bad JSON, unknown type)  4400
    ├── Unauthorized        a missing, forged or expired join token              4401
    ├── Forbidden           the token does not grant what was asked (not fatal)  4403
    ├── RoomFull            the meeting is at this node's capacity               4409
    │   (contract) JoinRefused: the control plane refused the connection     4403
    ├── NegotiationFailed   an SDP offer/answer could not be applied (not fatal) 4400
    └── ChatFailed          the control plane refused a chat message (not fatal)

``townhall.contract.ProtocolError`` and ``TokenError`` count as SignalingError
and Unauthorized. Anything else is an internal error: close code 1011 and no
details sent to the client.
"""

from __future__ import annotations

from dataclasses import dataclass

from townhall.contract import ControlUnavailable, JoinRefused, ProtocolError, TokenError


class SfuError(Exception):
    """Base of the media plane's expected errors."""


class SignalingError(SfuError):
    """A signaling frame broke the protocol."""


class Unauthorized(SfuError):
    """The join token is missing, forged, expired or for another meeting."""


class Forbidden(SfuError):
    """The participant's token does not grant this action."""


class RoomFull(SfuError):
    """The meeting already holds as many participants as this node allows."""


class NegotiationFailed(SfuError):
    """An SDP offer or answer could not be applied."""


class ChatFailed(SfuError):
    """The control plane refused a chat message; ``code`` says why."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ErrorReply:
    """How an error is told to the client: the frame's code, and whether to close."""

    code: str
    message: str
    close_code: int | None


def error_reply(exc: BaseException) -> ErrorReply:
    """Map an exception to the error frame and WebSocket close code (None: stay open)."""
    if isinstance(exc, (SignalingError, ProtocolError)):
        return ErrorReply("protocol_error", str(exc), 4400)
    if isinstance(exc, (Unauthorized, TokenError)):
        return ErrorReply("unauthorized", str(exc), 4401)
    if isinstance(exc, JoinRefused):
        return ErrorReply("access_denied", str(exc), 4403)
    if isinstance(exc, ControlUnavailable):
        return ErrorReply("unavailable", str(exc), 4503)
    if isinstance(exc, Forbidden):
        return ErrorReply("forbidden", str(exc), None)
    if isinstance(exc, RoomFull):
        return ErrorReply("meeting_full", str(exc), 4409)
    if isinstance(exc, ChatFailed):
        return ErrorReply(exc.code, str(exc), None)
    if isinstance(exc, NegotiationFailed):
        return ErrorReply("negotiation_failed", str(exc), None)
    return ErrorReply("internal", "internal error", 1011)
