"""Signed, expiring download links: ``<path>?expires=<unix seconds>&sig=<hex>``.

``sig`` is HMAC-SHA256 over ``path + "\\n" + expires`` with a key derived from
the token secret (so that a download signature can never be mistaken for a
signature of anything else made with that secret). Whoever holds the link may
fetch that one file until it expires; nothing else is needed, as with S3's
presigned URLs, so a browser can follow it directly. A link whose signature
does not match is refused (403 ``invalid_signature``); a genuine one past its
expiry is ``410 link_expired``.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Callable
from urllib.parse import urlencode

from .errors import InvalidSignature, LinkExpired

__all__ = ["LinkSigner"]

_PURPOSE = b"townhall: recording download links v1"
_MAX_EXPIRES_DIGITS = 12


class LinkSigner:
    """Signs paths with an expiry, and checks signed ones."""

    def __init__(self, secret: str, clock: Callable[[], datetime.datetime]) -> None:
        self._key = hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()
        self._clock = clock

    def sign(self, path: str, ttl_s: int) -> tuple[str, datetime.datetime]:
        """The signed link (path and query) valid for ``ttl_s`` seconds, and its expiry."""
        expires = int(self._clock().timestamp()) + ttl_s
        query = urlencode({"expires": expires, "sig": self._signature(path, str(expires))})
        return f"{path}?{query}", datetime.datetime.fromtimestamp(expires, datetime.UTC)

    def verify(self, path: str, expires: str | None, sig: str | None) -> None:
        """Raise InvalidSignature or LinkExpired unless the link is genuine and current."""
        if not expires or not sig:
            raise InvalidSignature("this link is not signed: 'expires' and 'sig' are required")
        well_formed = expires.isascii() and expires.isdigit() and sig.isascii()
        if not well_formed or len(expires) > _MAX_EXPIRES_DIGITS:
            raise InvalidSignature("this link's signature does not match")
        if not hmac.compare_digest(self._signature(path, expires), sig.lower()):
            raise InvalidSignature("this link's signature does not match")
        if int(expires) <= self._clock().timestamp():
            expired = datetime.datetime.fromtimestamp(int(expires), datetime.UTC)
            raise LinkExpired(
                "this link has expired; list the recordings again for a new one",
                expired_at=expired.isoformat().replace("+00:00", "Z"),
            )

    def _signature(self, path: str, expires: str) -> str:
        message = f"{path}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
