"""Who is calling: the admin API key, or a participant's control token.

Both come as ``Authorization: Bearer <credential>``. The API key is compared
in constant time. A control token (:mod:`control.tokens`) speaks for one
participant of one meeting; the participant's role and standing are read
from the store on every request, so a promotion, a demotion or a removal
takes effect at once.

Endpoints accept one of three scopes: *admin* (the key only), *host* (the
key, or the control token of a host of that meeting) and *participant* (the
key, or any control token of someone who is in that meeting).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web

from .errors import Forbidden, Unauthorized
from .store import Participant, SqliteStore
from .tokens import verify_control_token

__all__ = ["ADMIN", "ApiKeyGuard", "Caller", "Guard"]


@dataclass(frozen=True)
class Caller:
    """The admin (``participant`` None) or one participant, as stored now."""

    participant: Participant | None = None

    @property
    def is_admin(self) -> bool:
        return self.participant is None

    @property
    def is_host(self) -> bool:
        return self.participant is None or self.participant.role == "host"

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return "admin" if self.participant is None else f"participant:{self.participant.id}"


ADMIN = Caller()


class ApiKeyGuard:
    """Lets a request through only when it carries the configured API key."""

    def __init__(self, api_key: str) -> None:
        self._expected = api_key.encode()

    def matches(self, request: web.Request) -> bool:
        """Whether the request carries the API key."""
        credential = _bearer(request)
        return credential is not None and hmac.compare_digest(credential.encode(), self._expected)

    def require(self, request: web.Request) -> None:
        """Raise Unauthorized unless the request has the right bearer key."""
        if not self.matches(request):
            raise Unauthorized("missing or invalid API key")


class Guard:
    """Resolves a request's caller and checks it against an endpoint's scope."""

    def __init__(self, api_key: str, token_secret: str, store: SqliteStore) -> None:
        self._key = ApiKeyGuard(api_key)
        self._secret = token_secret
        self._store = store

    def require_admin(self, request: web.Request) -> Caller:
        self._key.require(request)
        return ADMIN

    async def caller(self, request: web.Request, meeting_id: str) -> Caller:
        """The admin, or a participant of this meeting whatever their standing."""
        if self._key.matches(request):
            return ADMIN
        credential = _bearer(request)
        if credential is None:
            raise Unauthorized("missing API key or control token")
        claims = verify_control_token(credential, self._secret)
        if claims.meeting_id != meeting_id:
            raise Forbidden("this control token is for another meeting", meeting_id=meeting_id)
        participant = await self._store.get_participant(meeting_id, claims.participant_id)
        if participant is None:
            raise Forbidden("this control token's participant is no longer in the meeting")
        return Caller(participant)

    async def require_participant(self, request: web.Request, meeting_id: str) -> Caller:
        """The admin, or someone let into this meeting (connected or not)."""
        caller = await self.caller(request, meeting_id)
        participant = caller.participant
        if participant is not None and participant.status not in ("joined", "left"):
            raise Forbidden(_standing(participant), status=participant.status)
        return caller

    async def require_host(self, request: web.Request, meeting_id: str) -> Caller:
        """The admin, or a host of this meeting."""
        caller = await self.require_participant(request, meeting_id)
        if not caller.is_host:
            raise Forbidden("only a host of this meeting may do this")
        return caller

    async def require_self_or_host(
        self, request: web.Request, meeting_id: str, participant_id: str
    ) -> Caller:
        """The participant ``participant_id`` themselves (any standing), a host, or the admin."""
        caller = await self.caller(request, meeting_id)
        if caller.participant is not None and caller.participant.id == participant_id:
            return caller
        return await self.require_host(request, meeting_id)


def _bearer(request: web.Request) -> str | None:
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        return None
    return credential


def _standing(participant: Participant) -> str:
    if participant.status == "waiting":
        return "you are still waiting in the lobby"
    if participant.status == "denied":
        return "you were not let into this meeting"
    return "you were removed from this meeting"
