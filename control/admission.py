"""Admission: letting someone into a meeting, recording them, and minting their join token.

The token (``townhall.contract.mint_token``) is what the SFU checks when the
participant connects; the grant also says where to connect and which ICE
servers to use.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from townhall.contract import Permissions, Role, TokenClaims, mint_token

from .bodies import JoinRequest
from .errors import MeetingEnded, MeetingNotFound
from .meetings import Meetings, utc_now
from .store import Participant, Store, new_id

__all__ = ["PERMISSIONS", "Admission", "JoinGrant"]

# What each role may do once connected (the SFU enforces the token's claims).
PERMISSIONS: dict[Role, Permissions] = {
    "host": Permissions(publish=True, subscribe=True, chat=True, screen_share=True, record=True),
    "participant": Permissions(
        publish=True, subscribe=True, chat=True, screen_share=True, record=False
    ),
    "viewer": Permissions(
        publish=False, subscribe=True, chat=True, screen_share=False, record=False
    ),
}


@dataclass(frozen=True)
class JoinGrant:
    """Everything a client needs to connect to the meeting's SFU node."""

    participant: Participant
    meeting_title: str
    token: str
    signaling_url: str
    ice_servers: tuple[dict[str, Any], ...]


class Admission:
    """Checks a join against the meeting, records the participant, signs the token."""

    def __init__(
        self,
        store: Store,
        meetings: Meetings,
        *,
        token_secret: str,
        token_ttl_s: int,
        signaling_url: str,
        ice_servers: tuple[dict[str, Any], ...],
        clock: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        self._store = store
        self._meetings = meetings
        self._token_secret = token_secret
        self._token_ttl_s = token_ttl_s
        self._signaling_url = signaling_url
        self._ice_servers = ice_servers
        self._clock = clock

    async def join(self, meeting_id: str, request: JoinRequest, *, guest: bool) -> JoinGrant:
        """Admit one participant; MeetingNotFound or MeetingEnded otherwise.

        ``guest``: nobody vouches for this person (the browser join page), so
        their identity is anonymous, whatever name they chose.
        """
        meeting = await self._meetings.get(meeting_id)
        if meeting.status == "ended":
            raise MeetingEnded(f"meeting '{meeting_id}' has ended", meeting_id=meeting_id)
        participant_id = new_id(16)
        if guest:
            identity = f"guest:{participant_id}"
        else:
            identity = request.email.lower() if request.email else f"user:{participant_id}"
        participant = Participant(
            id=participant_id,
            meeting_id=meeting_id,
            identity=identity,
            name=request.name,
            email=request.email,
            role=request.role,
            joined_at=self._clock(),
        )
        if not await self._store.add_participant(participant):
            raise MeetingNotFound(f"no meeting with id '{meeting_id}'", meeting_id=meeting_id)
        claims = TokenClaims(
            meeting_id=meeting_id,
            participant_id=participant_id,
            identity=identity,
            name=request.name,
            role=request.role,
            permissions=PERMISSIONS[request.role],
        )
        return JoinGrant(
            participant=participant,
            meeting_title=meeting.title,
            token=mint_token(claims, self._token_secret, ttl_s=self._token_ttl_s),
            signaling_url=self._signaling_url,
            ice_servers=self._ice_servers,
        )
