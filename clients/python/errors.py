"""Errors raised by the Python client.

::

    ClientError                 anything the client raises on purpose
    ├── JoinError               the control plane refused or garbled the join
    ├── SignalingError          the signaling socket failed or broke the protocol
    │   └── ServerError         the SFU sent an ``error`` frame (``code``, ``message``)
    ├── SessionClosed           the session is over (left, ``bye``, socket lost)
    └── ClientTimeout           a bounded wait ran out (also a ``TimeoutError``)
"""

from __future__ import annotations

__all__ = [
    "ClientError",
    "ClientTimeout",
    "JoinError",
    "ServerError",
    "SessionClosed",
    "SignalingError",
]


class ClientError(Exception):
    """Base of every error the client raises on purpose."""


class JoinError(ClientError):
    """The control plane refused the join request or answered out of shape."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


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
