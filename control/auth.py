"""The admin API key: ``Authorization: Bearer <key>``, compared in constant time."""

from __future__ import annotations

import hmac

from aiohttp import web

from .errors import Unauthorized

__all__ = ["ApiKeyGuard"]


class ApiKeyGuard:
    """Lets a request through only when it carries the configured API key."""

    def __init__(self, api_key: str) -> None:
        self._expected = api_key.encode()

    def require(self, request: web.Request) -> None:
        """Raise Unauthorized unless the request has the right bearer key."""
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        # compare_digest: the time taken must not reveal how much of the key matched.
        if not hmac.compare_digest(key.strip().encode(), self._expected):
            raise Unauthorized("invalid API key")
