"""The control plane's own tokens: control tokens (REST calls of participants) and invites.

Both are JWTs (HS256) signed with the same secret as join tokens
(:mod:`townhall.contract`), told apart by their audience: a join token has
none and the SFU refuses a token with one, while these are refused here
unless their ``aud`` is the one expected. So none can stand in for another.

* control token, ``aud: townhall-control``: ``mtg`` (meeting), ``pid``
  (participant), ``role`` (as at minting; the store's current role is what
  counts), valid 12 hours;
* invite, ``aud: townhall-invite``: ``mtg``, ``inv`` (the invite's row, which
  counts uses), expiry; what the invite grants lives in its row.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import cast

import jwt

from townhall.contract import (
    ROLES,
    TOKEN_ALGORITHM,
    TOKEN_ISSUER,
    Permissions,
    Role,
    TokenClaims,
    mint_token,
)

from .errors import AccessDenied, Unauthorized

__all__ = [
    "CONTROL_AUDIENCE",
    "CONTROL_TOKEN_TTL_S",
    "INVITE_AUDIENCE",
    "ControlClaims",
    "Issuer",
    "mint_control_token",
    "mint_invite_token",
    "verify_control_token",
    "verify_invite_token",
]

CONTROL_AUDIENCE = "townhall-control"
INVITE_AUDIENCE = "townhall-invite"
CONTROL_TOKEN_TTL_S = 12 * 3600


@dataclass(frozen=True)
class ControlClaims:
    """Who a control token speaks for."""

    meeting_id: str
    participant_id: str
    role: Role


def mint_control_token(
    meeting_id: str, participant_id: str, role: Role, secret: str, ttl_s: int = CONTROL_TOKEN_TTL_S
) -> str:
    """Sign a control token for one participant of one meeting."""
    now = int(time.time())
    payload = {
        "iss": TOKEN_ISSUER,
        "aud": CONTROL_AUDIENCE,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + ttl_s,
        "mtg": meeting_id,
        "pid": participant_id,
        "role": role,
    }
    return jwt.encode(payload, secret, algorithm=TOKEN_ALGORITHM)


def verify_control_token(token: str, secret: str) -> ControlClaims:
    """Check a control token; Unauthorized, with the reason, if it is not one of ours."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[TOKEN_ALGORITHM],
            audience=CONTROL_AUDIENCE,
            issuer=TOKEN_ISSUER,
            options={"require": ["exp", "iat", "iss", "aud", "mtg", "pid", "role"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the control token has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"not a valid API key or control token ({exc})") from exc
    meeting_id, participant_id, role = payload["mtg"], payload["pid"], payload["role"]
    if not isinstance(meeting_id, str) or not isinstance(participant_id, str) or role not in ROLES:
        raise Unauthorized("the control token's claims are malformed")
    return ControlClaims(meeting_id, participant_id, cast(Role, role))


def mint_invite_token(meeting_id: str, invite_id: str, expires_at: int, secret: str) -> str:
    """Sign an invite to a meeting, valid until ``expires_at`` (Unix time)."""
    payload = {
        "iss": TOKEN_ISSUER,
        "aud": INVITE_AUDIENCE,
        "iat": int(time.time()),
        "exp": expires_at,
        "mtg": meeting_id,
        "inv": invite_id,
    }
    return jwt.encode(payload, secret, algorithm=TOKEN_ALGORITHM)


def verify_invite_token(token: str, meeting_id: str, secret: str) -> str:
    """The invite id, if ``token`` is a valid invite to this meeting; AccessDenied otherwise."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[TOKEN_ALGORITHM],
            audience=INVITE_AUDIENCE,
            issuer=TOKEN_ISSUER,
            options={"require": ["exp", "iss", "aud", "mtg", "inv"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AccessDenied("the invite has expired", rule="invite") from exc
    except jwt.PyJWTError as exc:
        raise AccessDenied("the invite is not valid", rule="invite") from exc
    if payload["mtg"] != meeting_id:
        raise AccessDenied("the invite is for another meeting", rule="invite")
    invite_id = payload["inv"]
    if not isinstance(invite_id, str):
        raise AccessDenied("the invite is not valid", rule="invite")
    return invite_id


@dataclass(frozen=True)
class Issuer:
    """Mints the tokens a participant is handed, with the server's secret and lifetimes."""

    secret: str
    join_ttl_s: int
    control_ttl_s: int = CONTROL_TOKEN_TTL_S

    def join_token(
        self,
        meeting_id: str,
        participant_id: str,
        identity: str,
        name: str,
        role: Role,
        permissions: Permissions,
    ) -> str:
        """The token the SFU checks on connect (``townhall.contract.mint_token``)."""
        claims = TokenClaims(
            meeting_id=meeting_id,
            participant_id=participant_id,
            identity=identity,
            name=name,
            role=role,
            permissions=permissions,
        )
        return mint_token(claims, self.secret, ttl_s=self.join_ttl_s)

    def control_token(self, meeting_id: str, participant_id: str, role: Role) -> str:
        return mint_control_token(
            meeting_id, participant_id, role, self.secret, ttl_s=self.control_ttl_s
        )
