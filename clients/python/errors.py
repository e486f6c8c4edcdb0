"""Errors raised by the Python client.

::

    ClientError                 anything the client raises on purpose
    ├── JoinError               the control plane refused or garbled the join
    │   ├── AccessDenied        403 ``access_denied``: a policy rule (``rule``) keeps us out
    │   ├── MeetingFull         409 ``meeting_full``
    │   ├── LobbyDenied         a host denied us while we waited in the lobby
    │   └── RejoinRefused       the control plane will not let us back in after a loss
    │                           (removed, blocked, the meeting ended): no reconnection
    ├── ApiError                a REST call answered with an error (``status``, ``code``)
    ├── SignalingError          the signaling socket failed or broke the protocol
    │   └── ServerError         the SFU sent an ``error`` frame (``code``, ``message``)
    ├── SessionClosed           the session is over (left, ``bye``, socket lost)
    └── ClientTimeout           a bounded wait ran out (also a ``TimeoutError``)
        └── LobbyTimeout        nobody admitted us within the lobby wait
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AccessDenied",
    "ApiError",
    "ClientError",
    "ClientTimeout",
    "JoinError",
    "LobbyDenied",
    "LobbyTimeout",
    "MeetingFull",
    "RejoinRefused",
    "ServerError",
    "SessionClosed",
    "SignalingError",
]


class ClientError(Exception):
    """Base of every error the client raises on purpose."""


class JoinError(ClientError):
    """The control plane refused the join request or answered out of shape."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details: Mapping[str, Any] = details or {}

    @property
    def rule(self) -> str | None:
        """The policy rule that refused the join, when the server named one."""
        rule = self.details.get("rule")
        return rule if isinstance(rule, str) else None


class AccessDenied(JoinError):
    """The meeting's access policy refuses this participant (``rule`` says which)."""


class MeetingFull(JoinError):
    """The meeting has as many participants as its policy allows."""


class LobbyDenied(JoinError):
    """A host denied this participant while it waited in the lobby."""


class RejoinRefused(JoinError):
    """The reconnect endpoint refused (401/403/404/409): retrying cannot help."""


class ApiError(ClientError):
    """A REST call answered with an HTTP error in the API's error shape."""

    def __init__(
        self,
        message: str,
        status: int,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details: Mapping[str, Any] = details or {}


class SignalingError(ClientError):
    """The signaling socket failed, or a frame did not match the protocol."""


class ServerError(SignalingError):
    """The SFU answered with an ``error`` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SessionClosed(ClientError):
    """The session has ended; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"session closed: {reason}")
        self.reason = reason


class ClientTimeout(ClientError, TimeoutError):
    """A bounded wait ran out; the message names what was awaited."""


class LobbyTimeout(ClientTimeout):
    """Nobody admitted this participant within the lobby wait."""
